"""`verify_store`: is a cache complete and intact, finite, and does it still match its teacher?

First every file of every done shard is read whole and every checksum checked (`kdcache.store.integrity`, like
borg's and restic's `check --read-data`); a damaged split is named piece by piece, with the command that repairs
it, and its content checks wait for the repair. Then, like TinyViT's check mode: K stored samples are recomputed
with the teacher (from the stored uint8 images, exactly what the teacher saw at precompute time) and the maximum
absolute and relative differences of the teacher map and every feature layer are reported;
relative = max |stored - recomputed| / max |recomputed|.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kdcache.console import progress
from kdcache.precompute import store_plan as planning
from kdcache.precompute.teacher_targets import TargetMaker
from kdcache.precompute.precompute_config import repair_command
from kdcache.store.integrity import Damage, check_split
from kdcache.store.backend import use_remote
from kdcache.store.reader import StoredSplit, open_store

MAP_FIELDS = ("teacher", "gt")


@dataclass
class SplitCheck:
    spec: str
    shards_done: int
    shards_total: int
    samples: int
    unreadable: int = 0
    teacher_bad: int = 0
    nonfinite: dict[str, int] = field(default_factory=dict)
    recomputed: int = 0
    files: int = 0  # files read whole, every checksum checked
    bytes_read: int = 0
    damage: list[Damage] = field(default_factory=list)
    diffs: dict[str, tuple[float, float]] = field(default_factory=dict)  # field -> (max abs, max rel)


@dataclass
class VerifyReport:
    url: str
    tolerance: float
    splits: list[SplitCheck]
    problems: list[str]
    notes: list[str]
    repair: str | None = None  # the command that repairs the damage found

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damage(self) -> list[Damage]:
        return [d for check in self.splits for d in check.damage]


def _scan(split: StoredSplit, check: SplitCheck, bar, task) -> None:
    """Stream every shard once: counts of unreadable / teacher-invalid samples and non-finite values."""
    fields = [f for f in split.fields if f in MAP_FIELDS or f.startswith("features/")]
    flags = [f for f in ("readable", "teacher_ok") if f in split.fields]
    for shard in range(split.n_shards):
        start, stop = shard * split.shard_size, min(len(split), (shard + 1) * split.shard_size)
        data = split.read(start, stop, fields + flags)
        check.unreadable += int((~data["readable"]).sum())
        if "teacher_ok" in data:
            check.teacher_bad += int((data["readable"] & ~data["teacher_ok"]).sum())
        for name in fields:
            bad = int((~np.isfinite(data[name].reshape(stop - start, -1)).all(axis=1)).sum())
            check.nonfinite[name] = check.nonfinite.get(name, 0) + bad
        bar.advance(task, stop - start)


def _pick(split: StoredSplit, count: int, seed: int) -> np.ndarray:
    ok = np.asarray(split.read(fields=["teacher_ok"])["teacher_ok"], dtype=bool)
    candidates = np.flatnonzero(ok)
    if count >= len(candidates):
        return candidates
    return np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False))


def _recompute(split: StoredSplit, maker: TargetMaker, indices: np.ndarray, check: SplitCheck, batch_size: int) -> None:
    for begin in range(0, len(indices), batch_size):
        chosen = indices[begin:begin + batch_size]
        stored = [split.read(int(i), int(i) + 1) for i in chosen]
        images = np.concatenate([s["image"] for s in stored])
        fresh, _ = maker(images, np.ones(len(chosen), bool))
        for name, values in fresh.items():
            if name == "teacher_ok":
                continue
            old = np.concatenate([s[_stored_field(split, maker, name)] for s in stored]).astype(np.float32)
            new = values.astype(np.float32)
            abs_diff = float(np.abs(old - new).max()) if old.size else 0.0
            rel_diff = abs_diff / max(float(np.abs(new).max()), 1e-12)
            prev = check.diffs.get(name, (0.0, 0.0))
            check.diffs[name] = (max(prev[0], abs_diff), max(prev[1], rel_diff))
        check.recomputed += len(chosen)


def _stored_field(split: StoredSplit, maker: TargetMaker, name: str) -> str:
    """Map an output name (`features/<array>`) back to the split's field name (`features/<layer>`)."""
    if not name.startswith("features/"):
        return name
    array = name.split("/", 1)[1]
    layer = next(layer for layer, arr in maker.plan.arrays.items() if arr == array)
    return f"features/{layer}"


def verify_store(
    url: str,
    teacher=None,
    samples: int = 4,
    device: str = "auto",
    precision: str | None = None,
    tolerance: float = 2e-2,
    seed: int = 0,
    batch_size: int = 8,
    storage_options: dict | None = None,
) -> VerifyReport:
    """Check completeness and finiteness of every split; recompute `samples` samples per split with the teacher.

    `teacher` defaults to the manifest's teacher name; pass a name or a Teacher object to use other weights
    for the same model (e.g. a local copy). `samples=0` skips the recomputation. `storage_options`: fsspec's, for
    a remote `url`.
    """
    use_remote(url, storage_options)
    store = open_store(url)
    manifest = store.manifest
    problems, notes, checks = [], [], []
    maker = None
    if manifest.get("teacher") and samples > 0:
        from kdcache.precompute.run import resolve_teacher

        entry = manifest["teacher"]
        model = resolve_teacher(teacher or entry["name"], device, precision or entry["precision"])
        if model is not None and getattr(model, "identity", None) != entry.get("identity"):
            notes.append(f"teacher identity {getattr(model, 'identity', None)} differs from the cache's {entry.get('identity')}")
        maker = TargetMaker(model, planning.feature_plan(url, manifest), entry["flip_tta"], device,
                            precision or entry["precision"])
    with progress(unit="img") as bar:
        for spec in store.splits:
            split = store.split(spec)
            done, total = split.shards_done()
            check = SplitCheck(spec, done, total, len(split))
            checks.append(check)
            if done < total:
                problems.append(f"{spec}: {total - done} of {total} shards missing (rerun the precompute command)")
            task = bar.add_task(f"check {spec}", total=len(split))
            integrity = check_split(split, "data", advance=lambda samples, task=task: bar.advance(task, samples))
            check.files, check.bytes_read, check.damage = integrity.files, integrity.bytes_read, integrity.damage
            notes += integrity.notes
            if check.damage:
                problems += [f"damaged: {damage}" for damage in check.damage]
                notes.append(f"{spec}: its values are scanned and recomputed once it is repaired")
                continue
            _scan(split, check, bar, bar.add_task(f"scan {spec}", total=len(split)))
            for name, bad in check.nonfinite.items():
                if bad:
                    problems.append(f"{spec}: {bad} samples with non-finite '{name}'")
            if maker is not None:
                _recompute(split, maker, _pick(split, samples, seed), check, batch_size)
                for name, (abs_diff, rel_diff) in check.diffs.items():
                    if rel_diff > tolerance:
                        problems.append(f"{spec}: '{name}' differs from the teacher by {rel_diff:.3g} (relative) > {tolerance:g}")
    damaged = [check.spec for check in checks if check.damage]
    repair = repair_command(url, manifest, damaged) if damaged else None
    return VerifyReport(url, tolerance, checks, problems, notes, repair)
