"""`kdcache data download nyu` against a local HTTP server: full fetch, resume, failures, wrong content."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers.data_fixtures import write_nyu_mat, write_splits_mat
from kdcache.data import open_split
from kdcache.data.download import download, download_nyu
from kdcache.errors import KdcacheError


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files`; `server.mode` is "ok", "fail" (HTTP 500), "drop" (half the body) or "no-range"."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if server.mode == "fail" or body is None:
            self.send_error(500 if body is not None else 404)
            return
        start = 0
        header = self.headers.get("Range")
        if header and server.mode != "no-range":
            start = int(header.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        self.wfile.write(payload[: len(payload) // 2] if server.mode == "drop" else payload)
        if server.mode == "drop":
            self.close_connection = True


@pytest.fixture(scope="module")
def nyu_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("remote")
    mat = write_nyu_mat(folder / "labeled.mat", frames=4, height=6, width=8)
    splits = write_splits_mat(folder / "splits.mat", [1, 2], [3, 4])
    return {"/labeled.mat": mat.read_bytes(), "/splits.mat": splits.read_bytes()}


@pytest.fixture
def server(nyu_bytes, monkeypatch):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.mode, httpd.requests = dict(nyu_bytes), "ok", []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("KDCACHE_NYU_LABELED_URL", f"{base}/labeled.mat")
    monkeypatch.setenv("KDCACHE_NYU_SPLITS_URL", f"{base}/splits.mat")
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_fetches_checks_and_is_idempotent(server, data_root, nyu_bytes):
    paths = download_nyu()
    assert [p.name for p in paths] == ["nyu_depth_v2_labeled.mat", "splits.mat"]
    assert paths[0].read_bytes() == nyu_bytes["/labeled.mat"]
    assert not list((data_root / "nyu").glob("*.part"))
    assert open_split("nyu-test").ids == ["00002", "00003"]
    server.requests.clear()
    download_nyu()  # valid files present: nothing is fetched again
    assert server.requests == []


def test_download_resumes_a_truncated_part_file(server, data_root, nyu_bytes):
    body = nyu_bytes["/labeled.mat"]
    part = data_root / "nyu" / "nyu_depth_v2_labeled.mat.part"
    part.parent.mkdir()
    part.write_bytes(body[:1000])
    download_nyu()
    assert ("/labeled.mat", "bytes=1000-") in server.requests
    assert (data_root / "nyu" / "nyu_depth_v2_labeled.mat").read_bytes() == body and not part.exists()


def test_complete_part_file_is_finished_after_416(server, data_root, nyu_bytes):
    part = data_root / "nyu" / "splits.mat.part"
    part.parent.mkdir()
    part.write_bytes(nyu_bytes["/splits.mat"])
    download_nyu()
    assert (data_root / "nyu" / "splits.mat").read_bytes() == nyu_bytes["/splits.mat"]


def test_server_that_ignores_range_restarts_cleanly(server, data_root, nyu_bytes):
    server.mode = "no-range"
    part = data_root / "nyu" / "splits.mat.part"
    part.parent.mkdir()
    part.write_bytes(b"stale bytes from another file")
    download_nyu()
    assert (data_root / "nyu" / "splits.mat").read_bytes() == nyu_bytes["/splits.mat"]


def test_failing_server_leaves_no_final_file(server, data_root):
    server.mode = "fail"
    with pytest.raises(KdcacheError, match="HTTP 500.*KDCACHE_NYU_LABELED_URL"):
        download_nyu()
    assert not (data_root / "nyu" / "nyu_depth_v2_labeled.mat").exists()


def test_broken_transfer_keeps_part_then_resumes(server, data_root, nyu_bytes):
    server.mode = "drop"
    with pytest.raises(KdcacheError, match="run the command again to resume"):
        download_nyu()
    final, part = data_root / "nyu" / "nyu_depth_v2_labeled.mat", data_root / "nyu" / "nyu_depth_v2_labeled.mat.part"
    assert not final.exists() and 0 < part.stat().st_size < len(nyu_bytes["/labeled.mat"])
    server.mode = "ok"
    download_nyu()
    assert final.read_bytes() == nyu_bytes["/labeled.mat"]


def test_wrong_content_is_deleted_not_kept(server, data_root):
    server.files["/labeled.mat"] = b"<html>moved to a new home</html>"
    with pytest.raises(KdcacheError, match="did not deliver the expected file"):
        download_nyu()
    assert not (data_root / "nyu").exists()  # nothing at all is left behind, not even the folder


@pytest.mark.parametrize("failure", ["http-500", "unreachable"])
def test_a_failed_download_leaves_no_folder_behind(failure, server, tmp_path, run_cli):
    """`kdcache data download nyu` that gets nothing leaves nothing: no empty data/nyu/ (nor data/), no empty
    .part; the one error: line says what happened."""
    server.mode = "fail"
    url = ["--labeled-url", "http://127.0.0.1:9/x.mat"] if failure == "unreachable" else []
    code, _, err = run_cli("data", "download", "nyu", "--root", tmp_path / "fresh" / "data", *url)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert ("cannot reach" if failure == "unreachable" else "HTTP 500") in err
    assert list(tmp_path.iterdir()) == []


def test_invalid_existing_file_asks_for_force(server, data_root, nyu_bytes):
    (data_root / "nyu").mkdir()
    (data_root / "nyu" / "nyu_depth_v2_labeled.mat").write_bytes(b"junk")
    with pytest.raises(KdcacheError, match="--force"):
        download_nyu()
    download_nyu(force=True)
    assert (data_root / "nyu" / "nyu_depth_v2_labeled.mat").read_bytes() == nyu_bytes["/labeled.mat"]


def test_unreachable_server(data_root):
    with pytest.raises(KdcacheError, match="cannot reach"):
        download_nyu(labeled_url="http://127.0.0.1:9/x.mat")


def test_other_datasets_explain_where_to_get_them():
    with pytest.raises(KdcacheError, match="registration"):
        download("kitti")
    with pytest.raises(KdcacheError, match="unknown dataset"):
        download("imagenet")


def test_cli_download(server, data_root, run_cli):
    code, out, _ = run_cli("data", "download", "nyu", "--root", data_root)
    assert code == 0 and "splits.mat" in out
    server.mode = "fail"
    code, _, err = run_cli("data", "download", "nyu", "--root", data_root / "other")
    assert code == 2 and "HTTP 500" in err
