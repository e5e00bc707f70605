"""`EvalConfig`: everything `evaluate(config)` takes, each default and each `kdcache eval` flag stated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kdcache.config import Config, format_hw, format_option_value, name_text, parse_pairs, reader_options, setting
from kdcache.errors import KdcacheError
from kdcache.sizes import parse_hw


@dataclass
class EvalConfig(Config):
    """Score `models` on the labeled `split` under `protocols`, side by side."""

    LABEL: ClassVar[str] = "eval"
    COMMAND: ClassVar[tuple[str, ...]] = ("kdcache", "eval")

    # Student run dirs / checkpoints, .onnx files and teacher names (`dpt-large`, `hf:PATH`); in Python also
    # `Predictor` objects.
    models: list[Any] = setting(flag="--model", style="repeat", text=name_text,
                                help="Student run/checkpoint dir or teacher name (dpt-large, hf:PATH); repeat to "
                                     "compare.")
    split: Any = setting(flag="--split", text=name_text, help="Labeled split, e.g. nyu-test, kitti-eigen-test, "
                                                          "synth-test[:100].")
    # Empty: `metric`, or the aligned protocol where the model or the GT requires one.
    protocols: list[str] = setting(factory=list, flag="--protocol", style="repeat",
                                   help="metric (default; BTS), metric-zoedepth, hu, aligned-disparity, aligned-depth "
                                        "(see --list-protocols); repeatable.")
    flip_tta: bool = setting(False, flag="--flip-tta", style="flag",
                             help="Average with the horizontally flipped prediction, as ZoeDepth's reported numbers "
                                  "do (BTS and Hu et al. do not).")
    device: str = setting("auto", flag="--device", help="auto (the GPU if there is one), cpu, cuda, cuda:1, mps.")
    precision: str = setting("fp32", flag="--precision", help="Teacher precision: fp32, fp16, bf16.")
    input_size: tuple[int, int] | None = setting(None, flag="--input-size", parse=parse_hw, text=format_hw,
                                                 help="HxW the models are fed (students default to their training "
                                                      "size).")
    crop: str = setting("auto", flag="--crop",
                        help="auto (Eigen for NYU, Garg for KITTI), none, eigen, garg, eigen-kitti.")
    max_depth: float | None = setting(None, flag="--max-depth", help="Override the dataset's depth cap in metres.")
    efficiency: bool = setting(True, flag="--efficiency", style="switch",
                               help="Measure params, GFLOPs, latency, throughput, memory.")
    throughput_batch: int = setting(32, flag="--throughput-batch",
                                    help="Batch size for throughput (halved if memory is short).")
    data_root: str | None = setting(None, flag="--data-root", help="Dataset root (default $KDCACHE_DATA or ./data).")
    split_options: dict[str, Any] = setting(factory=dict, flag="--split-option", style="pairs", parse=parse_pairs,
                                            text=format_option_value,
                                            help="Reader option of the split, KEY=VALUE (repeatable), e.g. "
                                                 "size=96x128 (synthetic world), gt=filled (NYU).")
    strict: bool = setting(False, flag="--strict", style="flag",
                           help="Stop on an unreadable image instead of skipping it.")
    json_out: str | None = setting(None, flag="--json", help="Write the results as JSON here.")
    markdown_out: str | None = setting(None, flag="--markdown", help="Write a markdown table here.")

    def __post_init__(self) -> None:
        if isinstance(self.protocols, str):  # one protocol named
            self.protocols = [self.protocols]
        super().__post_init__()
        self.protocols = list(self.protocols or [])
        self.split_options = reader_options(self.split_options)
        for name in ("data_root", "json_out", "markdown_out"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))

    def validate(self) -> None:
        if not self.models:
            raise KdcacheError("no model to evaluate: pass --model RUN_DIR or --model TEACHER_NAME")
        if self.throughput_batch < 1:
            raise KdcacheError(f"--throughput-batch {self.throughput_batch} must be >= 1")
