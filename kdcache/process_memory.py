"""This process's memory as Linux reports it: /proc fields and a resettable peak RSS (None / False elsewhere)."""

from __future__ import annotations

from pathlib import Path


def proc_field(path: str, field: str) -> int | None:
    """Bytes of a `Field:   1234 kB` line of a /proc file; None off Linux or when absent."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def proc_status(field: str) -> int | None:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM, ...)."""
    return proc_field("/proc/self/status", field)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (`/proc/self/clear_refs`); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
