"""One colour convention for depth pictures (kdcache.depth_colors): inferno, near = bright, with a colour bar."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

import kdcache
from kdcache.depth_colors import DEPTH_CMAP, LEGEND_WIDTH, lookup_table, matplotlib_depth, range_labels
from kdcache.infer import write_outputs

PACKAGE = Path(kdcache.__file__).parent
COLORMAP_NAME = re.compile(r"""["'](turbo|inferno|magma|viridis|plasma|jet|gray|Spectral)(_r)?["']""")


def brightness(rgb) -> float:
    return float(np.asarray(rgb, dtype=float) @ [0.299, 0.587, 0.114])


def test_the_lookup_table_runs_from_far_dark_to_near_bright():
    table = lookup_table()
    assert table.shape == (256, 3) and table.dtype == np.uint8
    levels = [brightness(c) for c in table]
    assert all(b >= a - 1.0 for a, b in zip(levels, levels[1:]))  # lightness never falls back: order reads in grey
    assert levels[-1] - levels[0] > 200


def test_no_picture_names_a_colormap_of_its_own():
    """Every picture takes its colours from depth_colors: no other module (or page) names a colormap."""
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*")
                 if path.suffix in (".py", ".js", ".html") and path.name != "depth_colors.py"
                 and COLORMAP_NAME.search(path.read_text())]
    assert not offenders


def test_infer_colours_near_bright_and_its_side_image_carries_the_colour_bar(tmp_path):
    depth = np.tile(np.linspace(1.0, 8.0, 40, dtype=np.float32)[:, None], (1, 30))  # top row nearest
    image = np.full((40, 30, 3), 90, np.uint8)
    color_path, side_path = write_outputs(image, depth, "depth", tmp_path / "x", ["color", "side"], DEPTH_CMAP)
    color = np.asarray(Image.open(color_path))
    table = lookup_table()
    assert (color[0, 0] == table[-1]).all() and (color[-1, 0] == table[0]).all()
    side = np.asarray(Image.open(side_path))
    assert side.shape == (40, 60 + LEGEND_WIDTH, 3)
    bar = side[:, 60 + 10]  # the gradient column of the colour bar: near at the top
    assert (bar[0] == table[-1]).all() and (bar[-1] == table[0]).all()


def test_colour_bar_labels_name_metres_for_metric_depth_and_ends_otherwise():
    assert range_labels(0.125, 1.0, "depth") == ("1 m", "8 m")  # nearness 1/m: 1.0 is 1 m away
    assert range_labels(0.1, 0.9, "disparity") == ("near", "far")


def test_data_show_draws_near_bright_with_the_colour_bar(tmp_path):
    from kdcache.data.overview import show_split
    from kdcache.data.splits import open_split

    view = show_split("synth-test[:1]", out=tmp_path / "s.png", size=(48, 64))
    picture = np.asarray(Image.open(view.out))
    assert picture.shape == (48, 128 + LEGEND_WIDTH, 3)
    sample = open_split("synth-test[:1]", size=(48, 64))[0]
    panel, table = picture[:, 64:128], lookup_table()
    nearest = np.unravel_index(np.argmin(np.where(sample.valid, sample.depth, np.inf)), sample.depth.shape)
    farthest = np.unravel_index(np.argmax(np.where(sample.valid, sample.depth, -np.inf)), sample.depth.shape)
    assert (panel[nearest] == table[-1]).all() and (panel[farthest] == table[0]).all()


def test_matplotlib_pictures_draw_the_nearest_metres_bright():
    arguments = matplotlib_depth(0.5, 10.0)
    table = lookup_table()
    near, far = (np.round(np.asarray(arguments["cmap"](x)[:3]) * 255) for x in (0.0, 1.0))
    assert np.abs(near - table[-1]).max() <= 1 and np.abs(far - table[0]).max() <= 1
    assert (arguments["vmin"], arguments["vmax"]) == (0.5, 10.0)
