"""Export: a trained student as an ONNX file, checked against PyTorch, with the speed users choose it by.

    >>> from kdcache.export import export_onnx
    >>> report = export_onnx("runs/mobilevit-kd", "mobilevit-kd.onnx")   # parity-checked; latency and FPS

Modules: `onnx_export` (the exporters, the parity check, the metadata), `onnx_int8` (dynamic int8 quantization
and what it costs in accuracy), `ort_speed` (onnxruntime latency, FPS and peak memory at one input size).
Sessions are made by `kdcache.onnx_session`; the input rule an `.onnx` records is `kdcache.model_input`'s.
`kdcache export` prints the report as a table (cli/export.py).
"""

from kdcache.export.onnx_export import EXPORTERS, PARITY_TOLERANCE, export_onnx, relative_error, sample_images
from kdcache.export.onnx_int8 import quantize_file, quantize_int8
from kdcache.export.ort_speed import SpeedSettings, measure_isolated, measure_onnx_speed
from kdcache.onnx_session import ort_session

__all__ = [
    "EXPORTERS",
    "PARITY_TOLERANCE",
    "SpeedSettings",
    "export_onnx",
    "measure_isolated",
    "measure_onnx_speed",
    "ort_session",
    "quantize_file",
    "quantize_int8",
    "relative_error",
    "sample_images",
]
