"""Can the Hugging Face hub be reached? Asked once per process, answered within a few seconds.

Without this, a machine with no network learns it from the hub client itself, which retries every request with a
growing back-off (`Retrying in 8s [Retry 5/5]`): 30 to 40 s before the first useful line, per file. Teachers
(`kdcache.teachers.hf_source`) and the students' ImageNet weights (`kdcache.students.encoders`) ask here first and,
when the answer is no, use only what is already on disk or say in one line what is missing.
"""

from __future__ import annotations

import functools
import os
import threading
import urllib.error
import urllib.request

# One HEAD request to the endpoint, DNS included: a hub that does not answer within this is treated as unreachable.
PROBE_SECONDS = 3.0

_TRUE = ("1", "true", "yes", "on")
# Offline switches a user may already have set for the HF libraries, plus kdcache's own.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "KDCACHE_OFFLINE")


def offline_mode() -> bool:
    """The user asked for no network: one of `OFFLINE_VARIABLES` is set (or huggingface_hub read it at import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or any(
        os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_VARIABLES)


def endpoint() -> str:
    """The hub the HF clients talk to: `HF_ENDPOINT`, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_available() -> bool:
    """False when offline mode is on or the endpoint does not answer within `PROBE_SECONDS`."""
    return not offline_mode() and _answers(endpoint(), PROBE_SECONDS)


def why_unavailable() -> str:
    """The reason `hub_available()` is False, for the one-line messages that name it."""
    if offline_mode():
        return "HF_HUB_OFFLINE=1 is set"
    return f"the hub ({endpoint()}) did not answer within {PROBE_SECONDS:g} s"


@functools.lru_cache(maxsize=None)
def _answers(url: str, seconds: float) -> bool:
    """Any HTTP answer (even an error status) means reachable. Run in a daemon thread joined with a deadline,
    because a socket timeout covers neither name resolution nor a listener that accepts and then stays silent
    on every platform; the thread is left behind, not waited for."""
    result: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=seconds).close()
            result.append(True)
        except urllib.error.HTTPError:
            result.append(True)
        except Exception:  # refused, unresolvable, timed out, TLS failure: no hub to talk to
            result.append(False)

    thread = threading.Thread(target=probe, name="kdcache-hub-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(result and result[0])
