"""Where HF teacher weights come from: a hub id (cached or downloadable) or a local `save_pretrained` folder.

All the ways loading can fail for a user (no network, offline mode, typo in a path, a folder that is not a
depth model) become one `KdcacheError` line *before* any image is processed, naming the hub id and the
way out (`--teacher hf:/path/to/folder`). Weights are never loaded with `trust_remote_code`, and only from
safetensors files: a pickled `pytorch_model.bin` can run code when it is loaded, so it is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kdcache.errors import KdcacheError
from kdcache.hub import hub_available, why_unavailable

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAFETENSORS_ONLY = ("only safetensors weights are loaded (a pickled .bin can run code when loaded): convert it once, "
                    "in a session you trust, with `model.save_pretrained(folder, safe_serialization=True)`")


@dataclass(frozen=True)
class HFSource:
    """`ref` as given (hub id or path); `local` is the folder when the weights are on disk by path."""

    ref: str
    local: Path | None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.local is not None


def resolve_source(ref: str, revision: str | None = None) -> HFSource:
    """Decide whether `ref` is a local folder or a hub id; a path that does not exist is a one-line error."""
    if not ref:
        raise KdcacheError("empty HF teacher reference: use hf:ORG/NAME (a hub id) or hf:/path/to/folder")
    path = Path(ref).expanduser()
    # Hub ids are ORG/NAME; anything rooted, relative-dotted or deeper is meant as a folder.
    looks_like_path = ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or "\\" in ref
    if path.exists():
        if not path.is_dir():
            raise KdcacheError(f"teacher path {ref} is a file: pass the folder written by save_pretrained")
        if not (path / "config.json").is_file():
            raise KdcacheError(
                f"teacher folder {ref} has no config.json: pass a folder written by save_pretrained "
                "(config.json + model.safetensors)"
            )
        return HFSource(ref, path.resolve(), revision)
    if looks_like_path:
        raise KdcacheError(f"teacher folder {ref} does not exist: check the path passed as hf:PATH")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", ref):
        raise KdcacheError(f"'{ref}' is neither a local folder nor a hub id: use hf:ORG/NAME or hf:/path/to/folder")
    return HFSource(ref, None, revision)


def offline_message(hub_id: str) -> str:
    from huggingface_hub import constants

    return (
        f"teacher weights for '{hub_id}' are not in the HF cache ({constants.HF_HUB_CACHE}) and {why_unavailable()}: "
        f"download once on a connected machine (`hf download {hub_id}`) with HF_HUB_OFFLINE unset, "
        f"or pass a local folder with --teacher hf:/path/to/folder"
    )


def use_cache_only(source: HFSource) -> bool:
    """True when a hub id must be loaded from the HF cache alone (the hub is offline or unreachable); fails fast,
    before any work and without the hub client's retries, when it is not cached either."""
    if source.is_local or hub_available():
        return False
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.ref, "config.json", revision=source.revision)
    if not isinstance(cached, str):
        raise KdcacheError(offline_message(source.ref))
    return True


def load_pretrained(source: HFSource, model_class):
    """`model_class.from_pretrained` with every loading failure turned into one clear line."""
    cache_only = use_cache_only(source)
    target = str(source.local) if source.is_local else source.ref
    if source.is_local:
        _check_safetensors(source.local)
    try:
        model = model_class.from_pretrained(target, revision=source.revision, trust_remote_code=False,
                                            use_safetensors=True, local_files_only=cache_only)
    except (OSError, EnvironmentError) as err:
        if "safetensors" in str(err):
            raise KdcacheError(f"teacher '{source.ref}' has no safetensors weights: {SAFETENSORS_ONLY}") from None
        if source.is_local:
            raise KdcacheError(f"cannot load teacher from {target}: {_first_line(err)}") from err
        if "not a valid model identifier" in str(err):
            raise KdcacheError(
                f"'{source.ref}' is neither a local folder nor a model on the HF hub: check the id "
                "(`kdcache teachers` lists known ones) or pass hf:/path/to/folder"
            ) from err
        raise KdcacheError(offline_message(source.ref)) from err
    except ValueError as err:
        # AutoModelForDepthEstimation raises ValueError for configs that are not depth models.
        raise KdcacheError(
            f"'{target}' is not a depth-estimation model ({_first_line(err)}): "
            "use a DPT or Depth Anything checkpoint (`kdcache teachers` lists known ones)"
        ) from err
    return model.eval()


def _check_safetensors(folder: Path) -> None:
    """Refuse a folder whose only weights are pickles, before transformers opens anything."""
    weights = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if weights and not any(name.endswith(".safetensors") for name in weights):
        raise KdcacheError(f"teacher folder {folder} holds {', '.join(weights)}: {SAFETENSORS_ONLY}")


def weights_sha256(folder: Path) -> str:
    """One sha256 over the weight files of a local folder (names and bytes, sorted), for the manifest."""
    return files_sha256(sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)))


def files_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def source_identity(source: HFSource, config) -> dict:
    """Manifest identity: hub id + commit hash, or folder path + sha256 of its weights."""
    identity = {"source": source.ref, "model_type": getattr(config, "model_type", None)}
    if source.is_local:
        identity["path"] = str(source.local)
        identity["weights_sha256"] = weights_sha256(source.local)
    else:
        identity["revision"] = hub_commit(source) or source.revision
    return identity


def hub_commit(source: HFSource) -> str | None:
    """The commit hash the loaded hub weights came from (read after loading, so the cache already has it)."""
    try:  # transformers >= 5 resolves revisions itself; older ones stored config._commit_hash
        from transformers.utils.hub import resolve_revision

        resolved = getattr(resolve_revision(source.ref, source.revision, local_files_only=True), "resolved", None)
        if resolved:
            return str(resolved)
    except ImportError:
        pass
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.ref, "config.json", revision=source.revision)
    if isinstance(cached, str) and Path(cached).parent.parent.name == "snapshots":
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    return None


def card_licence(source: HFSource) -> str | None:
    """The `license:` field of the model card's YAML front matter, if the card is on disk."""
    readme = None
    if source.is_local:
        readme = source.local / "README.md"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source.ref, "README.md", revision=source.revision)
        readme = Path(cached) if isinstance(cached, str) else None
    if readme is None or not readme.is_file():
        return None
    match = re.search(r"^license:\s*(\S+)", readme.read_text(errors="replace")[:4000], flags=re.MULTILINE)
    return match[1] if match else None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
