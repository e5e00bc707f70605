"""The one place onnxruntime sessions are made: a CPU session over an exported `.onnx`, and its kdcache metadata.

It sits outside `kdcache.export` so that `kdcache.evaluate` (which runs `.onnx` files) and `kdcache.export`
(which writes and checks them, and evaluates its int8 copy) never import each other in a circle.
"""

from __future__ import annotations

import os

from kdcache.errors import KdcacheError


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """A CPU onnxruntime session with `threads` intra-op threads (None: onnxruntime's default, all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for unreadable / invalid models
        raise KdcacheError(f"cannot load ONNX model {path}: {str(err).splitlines()[0][:300]}; "
                           f"re-export it with kdcache export") from err


def session_metadata(session) -> dict[str, str]:
    """The key/value metadata kdcache wrote into the file (`onnx_export._write_metadata`)."""
    return dict(session.get_modelmeta().custom_metadata_map)
