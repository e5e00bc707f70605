"""`HxW` text (`240x320`) -> (height, width): the one parser behind every size option of the CLI."""

from __future__ import annotations

from kdcache.errors import KdcacheError


def parse_hw(text: str | None, option: str) -> tuple[int, int] | None:
    """`"240x320"` -> (240, 320), None -> None (an option left out); both sides must be positive.

    `option` (e.g. `--resolution`) names the setting in the one-line error."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise KdcacheError(f"bad {option} '{text}': use HxW, e.g. 240x320") from None
    if height <= 0 or width <= 0:
        raise KdcacheError(f"bad {option} '{text}': both sides must be positive, e.g. 240x320")
    return height, width
