"""Test doubles for the store/precompute tests (no tests here): a fake teacher following the Teacher
contract, small registered splits in the real `Sample` format, and a `main()` so subprocess tests
(kill -9, concurrent `--shard i/N`) can run precompute with them.

    PYTHONPATH=tests python -m helpers.precompute_fakes OUT [--shard i/N] [--delay S] [--seed K] [--split S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from kdcache.data import Sample, register_split
from kdcache.data.splits import SPLITS
from kdcache.errors import BadSampleError, KdcacheError

RESOLUTION = (32, 48)


class FakeTeacher:
    """A fixed random conv net with the Teacher interface; internal square 32x32 input like a ViT teacher.

    `nan_below`: samples whose mean intensity is below it get NaN depth (to test teacher_ok).
    `delay`: seconds slept per predict call (makes a run slow enough to kill in the middle).
    `hold`: a path; the first predict call creates `<hold>.started`, and every call waits while `hold` exists
    (so a test can act while a run is certainly in the middle).
    """

    name = "fake-teacher"
    output_space = "disparity"
    feature_layers = ["stem", "deep", "head.in"]
    default_feature_layers = ["stem", "deep"]
    licence = "MIT"

    def __init__(self, seed: int = 0, nan_below: float = -1.0, delay: float = 0.0, scale: float = 1.0,
                 hold: str | None = None):
        generator = torch.Generator().manual_seed(seed)
        self.stem = torch.randn(16, 3, 3, 3, generator=generator) * 0.3
        self.deep = torch.randn(48, 16, 3, 3, generator=generator) * 0.2
        self.head = torch.randn(1, 48, 1, 1, generator=generator) * 0.2
        self.nan_below, self.delay, self.scale, self.hold = nan_below, delay, scale, hold
        self.identity = {"source": "fake", "seed": seed}
        self.preprocess = {"size": [32, 32], "resize": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3}
        self.calls = self.images = 0

    def predict(self, images: torch.Tensor, layers=()):
        self.calls += 1
        self.images += images.shape[0]
        if self.delay:
            time.sleep(self.delay)
        if self.hold:
            open(f"{self.hold}.started", "w").close()
            while os.path.exists(self.hold):
                time.sleep(0.02)
        height, width = images.shape[-2:]
        x = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
        x = (x - 0.5) / 0.5
        stem = torch.relu(F.conv2d(x, self.stem, stride=2, padding=1))  # 16x16
        deep = torch.relu(F.conv2d(stem, self.deep, stride=2, padding=1))  # 8x8
        depth = F.softplus(F.conv2d(deep, self.head)) * self.scale + 0.1
        depth = F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        dark = images.mean(dim=(1, 2, 3)) < self.nan_below
        depth = torch.where(dark[:, None, None], torch.full_like(depth, float("nan")), depth)
        named = {"stem": stem, "deep": deep, "head.in": deep * 2}
        return SimpleNamespace(depth=depth, features={layer: named[layer] for layer in layers})


class FakeSplit:
    """Deterministic images (36x60: a different aspect than the cache, so cropping is exercised)."""

    def __init__(self, name: str, n: int, labeled: bool, bad: tuple = (), dark: tuple = ()):
        self.name, self.n, self.labeled, self.bad, self.dark = name, n, labeled, set(bad), set(dark)
        self.space = "depth" if labeled else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        if index in self.bad:
            raise BadSampleError(f"/fake/{self.name}/{index:04d}.jpg", "cannot identify image file")
        rng = np.random.default_rng(index)
        image = rng.integers(0, 256, size=(36, 60, 3), dtype=np.uint8)
        if index in self.dark:
            image[:] = 0
        sample = Sample(id=f"{self.name}/{index:04d}", image=image)
        if self.labeled:
            sample.depth = rng.uniform(0.5, 10.0, size=(36, 60)).astype(np.float32)
            sample.valid = rng.random((36, 60)) > 0.2
            sample.space = "depth"
        return sample


def _register() -> None:
    if "kdtest-labeled" in SPLITS:
        return

    @register_split("kdtest-labeled")
    def kdtest_labeled(root, n=20, **_):
        return FakeSplit("kdtest-labeled", n, labeled=True, dark=(5,))

    @register_split("kdtest-unlabeled")
    def kdtest_unlabeled(root, n=24, **_):
        return FakeSplit("kdtest-unlabeled", n, labeled=False, bad=(3, 17))

    @register_split("kdtest-big")
    def kdtest_big(root, n=40, **_):
        return FakeSplit("kdtest-big", n, labeled=False)


_register()


def main(argv=None) -> int:
    from kdcache.precompute import PrecomputeConfig, precompute

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--split", action="append", default=None)
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="the fake teacher's weights")
    parser.add_argument("--hold", default=None, help="wait in the teacher while this file exists")
    args = parser.parse_args(argv)
    index, count = (int(v) for v in args.shard.split("/"))
    try:
        precompute(PrecomputeConfig(
            FakeTeacher(seed=args.seed, delay=args.delay, hold=args.hold), args.split or ["kdtest-big"], args.out,
            resolution=RESOLUTION, batch_size=2, shard_size=4, shard=(index, count), feature_layers="default", feature_budget=args.budget,
        ))
    except KdcacheError as err:  # as the CLI reports it
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
