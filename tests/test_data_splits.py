"""Every registered split opens from fixtures (or needs none), shows, and fails clearly when its data is missing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.data_fixtures import write_all, write_video
from kdcache.data import list_splits, open_split
from kdcache.data.overview import show_split
from kdcache.depth_colors import LEGEND_WIDTH
from kdcache.errors import KdcacheError

# Small synthetic samples keep the synth-* entries cheap; other readers ignore the option.
OPTIONS = {"size": (24, 32)}


@pytest.fixture(scope="module")
def full_root(tmp_path_factory):
    root = write_all(tmp_path_factory.mktemp("full"))
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(np.full((5, 7, 3), 77, np.uint8)).save(photos / "p.jpg")
    write_video(root / "clips" / "c.mp4", frames=3)
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"image": [Image.fromarray(np.full((5, 7, 3), 9, np.uint8))]},
                               features=datasets.Features({"image": datasets.Image()})).save_to_disk(str(root / "hub"))
    return root


PREFIX_PATHS = {"folder:": "photos", "video:": "clips", "dataset:": "hub"}  # what each `prefix:PATH` entry reads


def _spec(name: str, root) -> str:
    return f"{name}{root / PREFIX_PATHS[name]}" if name.endswith(":") else f"{name}[:2]"


@pytest.mark.parametrize("name", list_splits())
def test_every_split_opens_and_yields_valid_samples(full_root, name):
    ds = open_split(_spec(name, full_root), root=full_root, **OPTIONS)
    assert len(ds) > 0
    sample = ds[0]
    assert sample.image.dtype == np.uint8 and sample.image.ndim == 3 and sample.image.shape[2] == 3
    assert sample.labeled == ds.labeled and sample.space == ds.space
    if ds.labeled:
        assert sample.depth.dtype == np.float32 and sample.depth.shape == sample.image.shape[:2]
        assert sample.valid.dtype == bool and sample.valid.shape == sample.depth.shape
        assert np.isfinite(sample.depth).all() and sample.valid.any()
        assert ds.space in ("depth", "disparity")
    else:
        assert sample.depth is None and sample.valid is None and ds.space is None


@pytest.mark.parametrize("name", list_splits())
def test_every_split_shows(full_root, tmp_path, name):
    out = tmp_path / "show.png"
    view = show_split(_spec(name, full_root), root=full_root, out=out, **OPTIONS)
    picture = np.asarray(Image.open(out))
    height, width = view.image_size
    legend = LEGEND_WIDTH if view.labeled else 0  # the colour bar beside a depth map
    assert picture.shape == (height, width * (2 if view.labeled else 1) + legend, 3)
    if view.labeled:
        assert view.depth_range["p2"] <= view.depth_range["p50"] <= view.depth_range["p98"]


@pytest.mark.parametrize("name", [n for n in list_splits() if not n.endswith(":")])
def test_missing_data_root_is_a_clear_error(tmp_path, name):
    absent = tmp_path / "no-such-root"
    try:
        ds = open_split(name, root=absent, **OPTIONS)
    except KdcacheError as err:
        message = str(err)
        assert str(absent) in message and "does not exist" in message and "KDCACHE_DATA" in message
        assert "\n" not in message
    else:
        assert len(ds) > 0 and ds[0].image.size  # a split that needs no files (the synthetic world)
