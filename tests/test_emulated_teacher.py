"""The emulated GPU teacher (`emulated:N`) and what it proves about the precompute loop without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kdcache.errors import KdcacheError
from kdcache.precompute import PrecomputeConfig, precompute
from kdcache.precompute.store_plan import FIT_AHEAD
from kdcache.precompute.stream import LOOKAHEAD
from kdcache.store import open_store
from kdcache.teachers import create_teacher
from kdcache.teachers import emulated as emu


@pytest.fixture
def clock(monkeypatch):
    """Record the device's queue and the host's waits instead of sleeping through them."""
    events = []
    run, wait = emu.VirtualDevice.run, emu.VirtualDevice.wait_until

    def recording_run(self, seconds):
        ready = run(self, seconds)
        events.append(("run", ready))
        return ready

    def recording_wait(self, ready_at):
        events.append(("wait", ready_at))
        monkeypatch.setattr(emu.time, "sleep", lambda s: None)
        wait(self, ready_at)

    monkeypatch.setattr(emu.VirtualDevice, "run", recording_run)
    monkeypatch.setattr(emu.VirtualDevice, "wait_until", recording_wait)
    return events


def test_outputs_have_dpt_large_shapes_and_predict_does_not_wait(clock):
    teacher = create_teacher("emulated:50")
    out = teacher.predict(torch.rand(2, 3, 24, 32), layers=teacher.feature_layers)
    assert out.depth.shape == (2, 24, 32)
    assert [tuple(out.features[f"neck_{i}"].shape) for i in range(4)] == [(2, 256, s, s) for s in (24, 48, 96, 192)]
    assert tuple(out.features["hidden_24"].shape) == (2, 1024, 24, 24)
    assert [kind for kind, _ in clock] == ["run"]  # queued, nothing waited for
    assert teacher.vdev.busy_s == pytest.approx(0.1)
    with pytest.raises(KdcacheError, match="no feature layer"):
        teacher.predict(torch.rand(1, 3, 8, 8), layers=["nope"])
    with pytest.raises(KdcacheError, match="milliseconds per image"):
        create_teacher("emulated:fast")


def test_device_work_is_free_and_host_reads_wait_for_the_device(clock):
    teacher = create_teacher("emulated:50")
    out = teacher.predict(torch.rand(4, 3, 24, 32), layers=["neck_3"])
    pooled = F.adaptive_avg_pool2d(out.features["neck_3"].float(), (3, 4)).half()
    finite = torch.isfinite(pooled.reshape(4, -1)).all(dim=1)
    readable = torch.tensor([True, False, True, True])
    ok = readable & finite  # small tensors keep real values on the device
    assert [kind for kind, _ in clock] == ["run"]
    assert ok.tolist() == [True, False, True, True]  # a host read: it waits for the forward
    assert clock[-1] == ("wait", clock[0][1])
    depth = out.depth.cpu().numpy()
    assert depth.shape == (4, 24, 32) and np.isfinite(depth).all() and depth.min() > 0
    waits = [kind for kind, _ in clock].count("wait")
    pooled[~ok] = 0  # boolean-mask indexing synchronises on a GPU, and here
    assert [kind for kind, _ in clock].count("wait") == waits + 1


def folder_split(tmp_path, count: int = 40) -> str:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return f"folder:{folder}"


def run(tmp_path, split: str, **options) -> str:
    return precompute(PrecomputeConfig("emulated:1", [split], str(tmp_path / "c.zarr"), resolution=(24, 32),
                                       batch_size=4, shard_size=8, workers=0,
                                       **{"feature_layers": "default", **options}))


def test_precompute_launches_ahead_and_waits_once_per_batch(clock, tmp_path):
    split = folder_split(tmp_path)
    stored = open_store(run(tmp_path, split, feature_layers="none")).split(split)
    assert stored.shards_done() == (5, 5) and stored.read()["teacher_ok"].all()
    runs = [ready for kind, ready in clock if kind == "run"]
    waits = [(position, ready) for position, (kind, ready) in enumerate(clock) if kind == "wait"]
    assert len(runs) == 10 and sorted(ready for _, ready in waits) == runs  # one wait per batch, no other sync
    for position, ready in waits:  # the device always had the next batches queued when the host waited
        queued = sum(kind == "run" and r > ready for kind, r in clock[:position])
        assert queued >= min(LOOKAHEAD, sum(r > ready for r in runs)), clock


def test_the_pca_fit_queues_its_batches_before_reading_them(clock, tmp_path):
    split = folder_split(tmp_path)
    stored = open_store(run(tmp_path, split, pca_fit_samples=12)).split(split)  # 3 batches of 4
    assert stored.shards_done() == (5, 5)
    kinds = [kind for kind, _ in clock]
    queued = min(10, 3 + FIT_AHEAD)  # its 3 batches, and more to keep the device busy while the host fits
    assert kinds[:queued] == ["run"] * queued and kinds[queued] == "wait"
    assert kinds.count("run") == 10  # the fit's batches are not run again


def test_shard_zero_ramps_up_and_every_key_comes_once():
    from kdcache.precompute.image_loader import ramp_up, run_batches

    assert [len(piece) for piece in ramp_up(list(range(32)))] == [4, 8, 16, 4]
    assert ramp_up([1, 2]) == [[1, 2]]
    batches = run_batches({0: [0, 1], 1: [0]}, [100, 10], 64, 32)
    assert [len(b) for b in batches] == [4, 8, 16, 4, 32, 32, 4, 4, 6]  # shard 0 of each split ramps up
    keys = [key for batch in batches for key in batch]
    assert keys == [(0, i) for i in range(100)] + [(1, i) for i in range(10)]
    # the same batches for shard 1 whether or not the run starts there (resume, --shard i/N)
    assert run_batches({0: [1]}, [100], 64, 32) == [b for b in batches if b[0][0] == 0][5:]
