"""`Sample`: the one record every reader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

Space = Literal["depth", "disparity"]


@dataclass
class Sample:
    """One image with optional ground truth.

    image: (H, W, 3) uint8 RGB.
    depth: (H, W) float32 ground truth, metres when `space == "depth"`, relative disparity
           (larger = nearer, unknown scale and shift) when `space == "disparity"`; None if unlabeled.
    valid: (H, W) bool, True where `depth` may be trusted; None if unlabeled.
    meta:  focal length, source path, scene type, ... (reader specific, JSON-serialisable).
    """

    id: str
    image: np.ndarray
    depth: Optional[np.ndarray] = None
    valid: Optional[np.ndarray] = None
    space: Optional[Space] = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labeled(self) -> bool:
        return self.depth is not None
