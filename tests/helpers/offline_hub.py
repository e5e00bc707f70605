"""A hub that cannot be reached, and timm weights already in a local HF cache: how kdcache meets a machine offline.

- `blackhole_endpoint()`: a 127.0.0.1 listener that accepts connections and never answers (the worst network: no
  refusal to react to), as a `http://` URL for HF_ENDPOINT.
- `unreachable_hub`: a pytest fixture (import it into a test module): offline mode off, every hub client pointed at
  a blackhole endpoint, an empty HF cache (its path is the fixture's value).
- `save_timm_weights(hub_cache, model_name)`: a random-weight timm checkpoint laid out in `hub_cache` exactly as
  `hf download timm/<model>.<tag>` leaves it; returns the state dict and the file.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest


@contextlib.contextmanager
def blackhole_endpoint():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel completes the handshakes; nobody ever reads or writes
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """Offline mode off, every hub client pointed at a `blackhole_endpoint`, an empty HF cache (yielded, for tests
    to put weights in), and kdcache's remembered probe answers forgotten before and after."""
    from huggingface_hub import constants

    from kdcache import hub

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    with blackhole_endpoint() as endpoint:
        for name in hub.OFFLINE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # where the HF clients themselves would go
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        hub._answers.cache_clear()
        yield cache
        hub._answers.cache_clear()


def save_timm_weights(hub_cache: Path, model_name: str, seed: int = 1):
    """A `model_name` checkpoint (random weights, seeded) in the HF cache layout; returns (state dict, file)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    state = timm.create_model(model_name, pretrained=False).state_dict()
    repo_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id
    folder = Path(hub_cache) / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    save_file(state, str(snapshot / "model.safetensors"))
    return state, snapshot / "model.safetensors"
