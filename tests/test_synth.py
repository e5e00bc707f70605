"""The procedural synthetic world: splits, determinism, geometry against analytic answers, textures."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from kdcache.data import SPLITS, open_split
from kdcache.world.camera import NYU_CX, NYU_CY, NYU_FX, NYU_FY, Pose, nyu_intrinsics
from kdcache.world.render import render
from kdcache.world.scene import Scene
from kdcache.world.shapes import Light, Room, Sphere
from kdcache.world.materials import PATTERNS, Material, material_pattern
from kdcache.errors import KdcacheError

SYNTH_SPLITS = [name for name in SPLITS.names() if name.startswith("synth-")]
SMALL = (48, 64)


def test_all_four_splits_are_registered():
    assert set(SYNTH_SPLITS) >= {"synth-train", "synth-test", "synth-aux", "synth-aux-far"}


@pytest.mark.parametrize("name", SYNTH_SPLITS)
def test_split_samples_have_the_contract_shapes_and_types(name):
    ds = open_split(name, size=SMALL)
    assert ds.name == name and len(ds) >= 1000
    sample = ds[0]
    assert sample.image.shape == (*SMALL, 3) and sample.image.dtype == np.uint8
    assert sample.id == f"{name}/000000"
    if ds.labeled:
        assert ds.space == sample.space == "depth"
        assert sample.depth.shape == SMALL and sample.depth.dtype == np.float32
        assert sample.valid.shape == SMALL and sample.valid.dtype == bool and sample.valid.all()
    else:
        assert ds.space is None
        assert sample.depth is None and sample.valid is None and sample.space is None
    json.dumps(sample.meta)  # meta must be JSON-serialisable (it goes into manifests)
    assert set(sample.meta["intrinsics"]) == {"fx", "fy", "cx", "cy"}
    assert len(sample.meta["room_size"]) == 3 and isinstance(sample.meta["seed"], int)


@pytest.mark.parametrize("name", SYNTH_SPLITS)
def test_samples_are_deterministic_per_index_and_differ_between_indices(name):
    first, again = open_split(name, size=SMALL), open_split(name, size=SMALL)
    a, b, c = first[3], again[3], first[4]
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    if first.labeled:
        assert np.array_equal(a.depth, b.depth)
    assert first[-1].id == first[len(first) - 1].id
    with pytest.raises(IndexError):
        first[len(first)]


def test_splits_use_disjoint_seeds():
    seeds = {name: {open_split(name).seed(i) for i in range(50)} for name in SYNTH_SPLITS}
    for name in SYNTH_SPLITS:
        for other in SYNTH_SPLITS:
            if name != other:
                assert not seeds[name] & seeds[other], (name, other)
    train, test = open_split("synth-train", size=SMALL), open_split("synth-test", size=SMALL)
    assert not np.array_equal(train[0].image, test[0].image)


def test_aux_shares_the_training_world_and_far_is_larger():
    train, aux, far = (open_split(n) for n in ("synth-train", "synth-aux", "synth-aux-far"))
    assert aux.world == train.world
    assert far.world.scale_range[0] >= 3.0


def test_indoor_depth_stays_in_nyu_range_and_far_depth_reaches_beyond():
    indoor = open_split("synth-train", size=(60, 80))
    for index in range(12):
        sample = indoor[index]
        assert np.isfinite(sample.depth).all()
        assert sample.depth.min() >= 0.5 and sample.depth.max() <= 10.0, index
    far = open_split("synth-aux-far", size=(60, 80))
    far_max = [far.render(i).depth.max() for i in range(6)]
    assert max(far_max) > 12.0 and max(far_max) <= 42.0
    assert all(far.render(i).valid.all() for i in range(2))
    vast = open_split("synth-aux-vast", size=(60, 80))
    vast_max = [vast.render(i).depth.max() for i in range(6)]
    assert max(vast_max) > 42.0 and max(vast_max) <= 80.0 and vast.world.scale_range[0] >= 6.0
    assert all(vast.render(i).valid.all() for i in range(2))


def test_size_option_scales_the_image_and_the_intrinsics():
    big, small = open_split("synth-test[:1]"), open_split("synth-test[:1]", size=(120, 160))
    assert big[0].image.shape == (240, 320, 3)
    assert small[0].image.shape == (120, 160, 3) and small[0].depth.shape == (120, 160)
    k = small[0].meta["intrinsics"]
    assert k["fx"] == pytest.approx(NYU_FX / 4) and k["fy"] == pytest.approx(NYU_FY / 4)
    # Same scene at both sizes: the room does not depend on the resolution.
    assert big[0].meta["room_size"] == small[0].meta["room_size"]


def test_full_resolution_intrinsics_are_nyus():
    k = nyu_intrinsics(480, 640)
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((NYU_FX, NYU_FY, NYU_CX, NYU_CY))


@pytest.mark.parametrize("bad", [(0, 64), (64,), "big", (10_000, 64)])
def test_bad_size_is_a_one_line_user_error(bad):
    with pytest.raises(KdcacheError, match="size"):
        open_split("synth-train", size=bad)


def test_unknown_option_is_a_user_error_but_other_readers_options_are_accepted():
    with pytest.raises(KdcacheError, match="sise"):
        open_split("synth-train", sise=(64, 64))
    assert len(open_split("synth-train[:2]", strict=False, gt="raw", max_pixels=10**6)) == 2
    assert open_split("synth-train").strict and not open_split("synth-aux").strict


def test_split_is_picklable_for_dataloader_workers():
    ds = open_split("synth-aux-far", size=SMALL)
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[5].image, ds[5].image)


def test_slicing_through_open_split():
    base, head = open_split("synth-train", size=SMALL), open_split("synth-train[:4]", size=SMALL)
    assert len(head) == 4 and head.name == "synth-train[:4]" and head.labeled
    assert np.array_equal(head[3].image, base[3].image)
    tail = open_split("synth-test[-2:]", size=SMALL)
    assert tail[1].id == "synth-test/000999"


# ---- geometry: rendered depth against independent, analytic ray/plane and ray/sphere intersections


def _pixel_rays_world(pose: Pose, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float64 world rays with camera-frame z == 1, straight from the documented intrinsics."""
    k = nyu_intrinsics(height, width)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    cam = np.stack([(cols - k.cx) / k.fx, (rows - k.cy) / k.fy, np.ones_like(cols)], axis=-1)
    return cam @ pose.rotation().T


def _empty_room(pose: Pose, size=(4.0, 2.8, 6.0), objects=()) -> Scene:
    plain = Material("plain", (0.5, 0.5, 0.5), (0.4, 0.4, 0.4))
    light = Light((2.0, 2.5, 3.0), 1.0, 3.0)
    return Scene(Room(size, (plain,) * 6), tuple(objects), (light,), pose, 0.3, (1.0, 1.0, 1.0), 1.0)


def test_empty_room_depth_matches_analytic_plane_intersections():
    pose = Pose((1.3, 1.45, 0.9), yaw=math.radians(12), pitch=math.radians(-15), roll=math.radians(2))
    size = (4.0, 2.8, 6.0)
    height, width = 60, 80
    _, depth = render(_empty_room(pose, size), height, width, np.random.default_rng(0))
    rays = _pixel_rays_world(pose, height, width)
    origin = np.asarray(pose.position)
    with np.errstate(divide="ignore"):
        # Each axis: the wall the ray heads for; the first one reached is the surface seen.
        t_axes = [np.where(rays[..., i] > 0, size[i] - origin[i], -origin[i]) / rays[..., i] for i in range(3)]
    expected = np.minimum.reduce([np.where(t > 0, t, np.inf) for t in t_axes])
    np.testing.assert_allclose(depth, expected, rtol=1e-4)
    # Floor pixels in particular: t = camera height / downward ray component.
    floor = t_axes[1] == expected
    floor &= rays[..., 1] < 0
    assert floor.sum() > 200
    np.testing.assert_allclose(depth[floor], pose.position[1] / -rays[..., 1][floor], rtol=1e-4)


def test_dataset_depth_never_lies_beyond_the_floor_plane():
    """Public-API check: using only meta (intrinsics, camera pose), every downward ray's depth is at most the
    analytic floor intersection (objects may occlude the floor, nothing can be behind it), and equal
    wherever the floor itself is seen."""
    ds = open_split("synth-train", size=(60, 80))
    floor_pixels = 0
    for index in range(4):
        sample = ds[index]
        cam = sample.meta["camera"]
        pose = Pose(tuple(cam["position"]), cam["yaw"], cam["pitch"], cam["roll"])
        rays = _pixel_rays_world(pose, 60, 80)
        down = rays[..., 1] < -1e-6
        floor_t = pose.position[1] / -rays[..., 1][down]
        seen = sample.depth[down]
        assert (seen <= floor_t * (1 + 1e-3) + 1e-3).all()
        floor_pixels += np.isclose(seen, floor_t, rtol=1e-3).sum()
    assert floor_pixels > 500  # of 4 x 4800: the floor is seen, at exactly the analytic depth


def test_sphere_depth_matches_analytic_ray_sphere_intersection():
    pose = Pose((2.0, 1.5, 0.8), yaw=0.0, pitch=math.radians(-10))
    ball = Sphere((2.3, 0.6, 3.5), 0.6, Material("checker", (0.8, 0.1, 0.1), (0.1, 0.1, 0.8), period=0.3))
    height, width = 60, 80
    _, depth = render(_empty_room(pose, objects=[ball]), height, width, np.random.default_rng(0))
    rays = _pixel_rays_world(pose, height, width)
    oc = np.asarray(pose.position) - np.asarray(ball.center)
    a = (rays**2).sum(-1)
    b = rays @ oc
    disc = b * b - a * (oc @ oc - ball.radius**2)
    hit = disc > 1e-3  # away from the silhouette, where a half pixel decides
    assert hit.sum() > 50
    expected = (-b[hit] - np.sqrt(disc[hit])) / a[hit]
    np.testing.assert_allclose(depth[hit], expected, rtol=1e-4)


def test_baked_floor_shadows_match_the_blobs_they_approximate():
    from kdcache.world.lighting import FloorMaps, _blob, _contact, _umbra
    from kdcache.world.shapes import Box

    pose = Pose((2.0, 1.5, 0.8), yaw=0.0, pitch=0.0)
    crate = Box((1.2, 0.4, 4.0), (0.5, 0.4, 0.3), 0.3, Material("plain", (0.5,) * 3, (0.5,) * 3))
    scene = _empty_room(pose, size=(4.0, 2.8, 6.0), objects=[crate])  # light at (2.0, 2.5, 3.0)
    maps = FloorMaps(scene)
    rng = np.random.default_rng(0)
    x, z = rng.uniform(0, 4.0, 3000).astype(np.float32), rng.uniform(0, 6.0, 3000).astype(np.float32)
    occlusion, shadow = maps.sample(x, z)
    bx, bz, radius = _blob(crate, scene.lights[0])
    exact_shadow = _umbra(((x - bx) ** 2 + (z - bz) ** 2) / radius**2)
    exact_contact = _contact(((x - 1.2) ** 2 + (z - 4.0) ** 2) / (crate.footprint_radius * 1.15) ** 2)
    assert np.abs(shadow - exact_shadow).max() < 0.08  # bilinear on a 64x64 grid; x and z not swapped
    assert np.abs(occlusion - exact_contact).max() < 0.08
    assert shadow.min() < 0.4 and occlusion.min() < 0.6


# ---- textures


@pytest.mark.parametrize("pattern", PATTERNS.names())
def test_patterns_mix_stays_in_unit_range_and_grain_is_mild(pattern):
    rng = np.random.default_rng(0)
    u, v = (rng.uniform(-20, 20, 4000).astype(np.float32) for _ in range(2))
    footprint = rng.uniform(0.001, 0.5, 4000).astype(np.float32)
    mix, shade = material_pattern(Material(pattern, (1, 1, 1), (0, 0, 0), period=0.3, grain=0.2), u, v, footprint)
    assert mix.dtype == np.float32 and mix.shape == u.shape
    assert mix.min() >= -1e-5 and mix.max() <= 1 + 1e-5
    assert shade.min() > 0.7 and shade.max() < 1.3
    assert mix.std() > 0.01  # a pattern, not a flat colour


@pytest.mark.parametrize("pattern", [n for n in PATTERNS.names() if PATTERNS.info(n).get("filtered")])
def test_filtered_patterns_fade_to_their_mean_when_a_pixel_covers_many_periods(pattern):
    rng = np.random.default_rng(1)
    u, v = (rng.uniform(-20, 20, 4000).astype(np.float32) for _ in range(2))
    mat = Material(pattern, (1, 1, 1), (0, 0, 0), period=0.1, grain=0.0)
    sharp, _ = material_pattern(mat, u, v, np.full_like(u, 1e-4))
    blurred, _ = material_pattern(mat, u, v, np.full_like(u, 5.0))
    assert blurred.std() < 0.3 * sharp.std()


def test_preview_grid_is_written(tmp_path):
    from kdcache.data.synth import save_grid

    out = save_grid(tmp_path / "grid.png", rows=1, indoor_cols=1, far_cols=1, size=(24, 32))
    assert out.exists() and out.stat().st_size > 1000
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind
