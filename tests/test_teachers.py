"""Teacher registry: names -> hub ids/classes, preprocessing equal to HF's pipeline, features, offline errors, ckpt:."""

from __future__ import annotations

import json

import pytest
import torch

from kdcache.errors import KdcacheError
from kdcache.teachers import TEACHERS, create_teacher, list_teachers, teacher_info
from kdcache.teachers.hf_arch import read_architecture
from kdcache.model_input import IMAGENET_MEAN, IMAGENET_STD, ResizeRule
from helpers.eval_fixtures import ArraySplit
from helpers.tiny_models import make_tiny_depth_anything, make_tiny_dpt, make_tiny_dpt_hybrid

# What each built-in HF name must load. A new HF entry fails the tests until it is added here.
EXPECTED_HUB = {
    "dpt-large": ("Intel/dpt-large", "DPTForDepthEstimation"),
    "dpt-hybrid": ("Intel/dpt-hybrid-midas", "DPTForDepthEstimation"),
    "depth-anything-v2-small": ("depth-anything/Depth-Anything-V2-Small-hf", "DepthAnythingForDepthEstimation"),
    "depth-anything-v2-base": ("depth-anything/Depth-Anything-V2-Base-hf", "DepthAnythingForDepthEstimation"),
    "depth-anything-v2-large": ("depth-anything/Depth-Anything-V2-Large-hf", "DepthAnythingForDepthEstimation"),
}
HUB_NAMES = [name for name in list_teachers() if "model_class" in teacher_info(name)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        "dpt": make_tiny_dpt(root / "dpt"),
        "da": make_tiny_depth_anything(root / "da"),
        "hybrid": make_tiny_dpt_hybrid(root / "hybrid"),
    }


def _images(height=40, width=60, batch=2, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _grid(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


# --- registry -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_teachers())
def test_every_name_states_its_facts(name):
    info = teacher_info(name)
    for key in ("source", "output_space", "input_rule", "feature_layers", "params", "licence"):
        assert key in info, f"{name} lacks '{key}' for `kdcache teachers`"
    assert info["output_space"] in ("disparity", "depth", None)


@pytest.mark.parametrize("name", HUB_NAMES)
def test_hub_name_maps_to_id_and_class(name, monkeypatch):
    import transformers

    import kdcache.teachers.hf as hf

    assert name in EXPECTED_HUB, f"new HF teacher '{name}': add its hub id and class to EXPECTED_HUB"
    hub_id, class_name = EXPECTED_HUB[name]
    assert teacher_info(name)["source"] == hub_id
    seen = {}

    def fake_load(source, model_class):
        seen.update(ref=source.ref, cls=model_class)
        raise KdcacheError("stop")

    monkeypatch.setattr(hf, "load_pretrained", fake_load)
    with pytest.raises(KdcacheError, match="stop"):
        create_teacher(name)
    assert seen == {"ref": hub_id, "cls": getattr(transformers, class_name)}


@pytest.mark.parametrize("name", HUB_NAMES)
def test_hub_name_offline_error_names_hub_id(name, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing downloaded
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(KdcacheError) as err:
        create_teacher(name)
    message = str(err.value)
    assert EXPECTED_HUB[name][0] in message and "HF_HUB_OFFLINE" in message and "hf:/path" in message
    assert "\n" not in message



def test_cached_hub_weights_load_offline_with_their_commit_hash(tmp_path, monkeypatch):
    """A hub id found in the HF cache loads offline; the manifest identity pins the snapshot's commit."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--Intel--dpt-large"
    make_tiny_dpt(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    teacher = create_teacher("dpt-large")
    assert teacher.name == "dpt-large" and teacher.licence == "apache-2.0"
    assert teacher.identity["source"] == "Intel/dpt-large" and teacher.identity["revision"] == commit
    assert "weights_sha256" not in teacher.identity  # the commit already pins hub weights
    assert teacher.predict(_images()).depth.shape == (2, 40, 60)

def _published_config(name):
    """The published checkpoints' architecture hyper-parameters (no weights), to check the zoo's static facts."""
    from transformers import BitConfig, DepthAnythingConfig, Dinov2Config, DPTConfig

    if name == "dpt-large":
        return DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                         backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024])
    if name == "dpt-hybrid":
        bit = BitConfig(layer_type="bottleneck", depths=[3, 4, 9], out_features=["stage1", "stage2", "stage3"],
                        global_padding="same", embedding_dynamic_padding=True)
        return DPTConfig(is_hybrid=True, backbone_config=bit, backbone_out_indices=[2, 5, 8, 11],
                         neck_hidden_sizes=[256, 512, 768, 768])
    layers = {"small": [3, 6, 9, 12], "base": [3, 6, 9, 12], "large": [5, 12, 18, 24]}[name.rsplit("-", 1)[1]]
    backbone = Dinov2Config(image_size=518, num_hidden_layers=max(layers), out_indices=layers,
                            reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone)


@pytest.mark.parametrize("name", HUB_NAMES)
def test_zoo_facts_match_config_derived_layers(name):
    arch = read_architecture(_published_config(name))
    info = teacher_info(name)
    assert arch.feature_layers == info["feature_layers"]
    assert arch.output_space == info["output_space"]
    assert arch.rule.size == ((384, 384) if name.startswith("dpt") else (518, 518))


def test_nc_licences_are_stated():
    assert "nc" in teacher_info("depth-anything-v2-large")["licence"]
    assert "nc" in teacher_info("depth-anything-v2-base")["licence"]
    assert "nc" not in teacher_info("depth-anything-v2-small")["licence"]


def test_unknown_name_suggests():
    with pytest.raises(KdcacheError, match="Did you mean 'dpt-large'"):
        create_teacher("dpt-larg")


# --- tiny DPT -------------------------------------------------------------------------------------------------
def test_dpt_predict_equals_direct_hf_run_on_non_square_input(tiny):
    teacher = create_teacher(f"hf:{tiny['dpt']}")
    assert teacher.output_space == "disparity"
    assert teacher.feature_layers == ["hidden_1", "hidden_2", "hidden_3", "hidden_4",
                                      "neck_0", "neck_1", "neck_2", "neck_3"]
    images = _images(40, 60)
    out = teacher.predict(images, teacher.feature_layers)

    # The model's input is checked against HF's own processor below; here, what the hooks expose of one run.
    model = teacher.model
    with torch.no_grad():
        direct = model(pixel_values=teacher.rule(images), output_hidden_states=True)
        hidden = direct.hidden_states
        neck_in = [hidden[i + 1] for i in model.config.backbone_out_indices]
        neck_out = model.neck(neck_in, None, None)
    assert out.depth.shape == (2, 40, 60) and out.depth.dtype == torch.float32
    torch.testing.assert_close(out.depth, teacher.rule.resize_back(direct.predicted_depth, (40, 60)))
    for k in range(1, 5):
        torch.testing.assert_close(out.features[f"hidden_{k}"], _grid(hidden[k], 4, 4))
    for i in range(4):
        torch.testing.assert_close(out.features[f"neck_{i}"], neck_out[i])
    assert out.features["neck_3"].shape[-1] == 32 and out.features["neck_0"].shape[-1] == 4


def test_predict_is_deterministic_and_features_optional(tiny):
    teacher = create_teacher(f"hf:{tiny['dpt']}")
    images = _images(32, 32, batch=3)
    first, second = teacher.predict(images, ["neck_2"]), teacher.predict(images, ["neck_2"])
    assert torch.equal(first.depth, second.depth) and torch.equal(first.features["neck_2"], second.features["neck_2"])
    plain = teacher.predict(images)
    assert plain.features == {} and torch.equal(plain.depth, first.depth)


def test_unknown_layer_and_bad_images_are_refused(tiny):
    teacher = create_teacher(f"hf:{tiny['dpt']}")
    with pytest.raises(KdcacheError, match="no feature layer 'hidden_24'.*choose from hidden_1"):
        teacher.predict(_images(), ["hidden_24"])
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        teacher.predict(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="float"):
        teacher.predict(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_input_size_is_configurable_and_checked(tiny):
    teacher = create_teacher(f"hf:{tiny['dpt']}", input_size=48)
    assert teacher.preprocess["size"] == [48, 48] and teacher.rule.input_size(40, 60) == (48, 48)
    assert teacher.predict(_images(), ["neck_0"]).features["neck_0"].shape[-2:] == (6, 6)
    with pytest.raises(KdcacheError, match="multiple of the patch size 8: pass input_size=48"):
        create_teacher(f"hf:{tiny['dpt']}", input_size=50)


def test_identity_hashes_local_weights(tiny, tmp_path):
    identity = create_teacher(f"hf:{tiny['dpt']}").identity
    assert identity["source"] == str(tiny["dpt"]) and identity["class"] == "DPTForDepthEstimation"
    assert len(identity["weights_sha256"]) == 64 and identity["preprocess"]["size_rule"] == "fixed"
    other = create_teacher(f"hf:{make_tiny_dpt(tmp_path / 'other', seed=1)}").identity
    again = create_teacher(f"hf:{make_tiny_dpt(tmp_path / 'again', seed=0)}").identity
    assert other["weights_sha256"] != identity["weights_sha256"] == again["weights_sha256"]


# --- tiny Depth Anything --------------------------------------------------------------------------------------
def test_depth_anything_keeps_aspect_and_matches_direct_run(tiny):
    teacher = create_teacher(f"hf:{tiny['da']}", input_size=28)
    assert teacher.rule.input_size(40, 60) == (28, 42)  # the side scaled least is the height: 28, then 42 on /14
    images = _images(40, 60)
    out = teacher.predict(images, teacher.feature_layers)

    model = teacher.model
    with torch.no_grad():
        direct = model(pixel_values=teacher.rule(images), output_hidden_states=True)
        # The neck sees the backbone's LayerNorm-ed states, so that is what the features must be.
        normed = [model.backbone.layernorm(direct.hidden_states[k]) for k in (1, 2, 3, 4)]
        neck_out = model.neck(normed, 2, 3)
    torch.testing.assert_close(out.depth, teacher.rule.resize_back(direct.predicted_depth, (40, 60)))
    for k in range(1, 5):
        torch.testing.assert_close(out.features[f"hidden_{k}"], _grid(normed[k - 1], 2, 3))
    for i in range(4):
        torch.testing.assert_close(out.features[f"neck_{i}"], neck_out[i])


def test_depth_anything_default_rule_and_metric_space(tiny, tmp_path):
    teacher = create_teacher(f"hf:{tiny['da']}")
    assert teacher.preprocess == {"size_rule": "keep-aspect", "size": [56, 56], "multiple_of": 14,
                                  "resize_filter": "bicubic", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                                  "uint8": True, "output_filter": "bicubic"}
    metric = create_teacher(f"hf:{make_tiny_depth_anything(tmp_path / 'metric', metric=True)}", input_size=28)
    assert metric.output_space == "depth"
    assert create_teacher(f"hf:{tiny['da']}", output_space="depth").output_space == "depth"


def test_short_side_rule_matches_depth_anything_lower_bound():
    rule = ResizeRule("short-side", (518, 518), 14, "bicubic")
    assert rule.input_size(480, 640) == (518, 686)  # 640 * 518/480 = 690.7 -> nearest multiple of 14
    assert rule.input_size(640, 480)[1] == 518 and rule.input_size(518, 518) == (518, 518)
    assert rule.input_size(1000, 1001) == (518, 518)


def test_keep_aspect_rule_sizes_as_hf_processors_do():
    from transformers.models.dpt.image_processing_dpt import get_resize_output_image_size

    rule = ResizeRule("keep-aspect", (518, 518), 14, "bicubic")
    for height, width in [(480, 640), (240, 320), (640, 480), (375, 1242), (518, 518), (50, 70)]:
        expected = get_resize_output_image_size(torch.zeros(3, height, width), (518, 518), True, 14)
        assert rule.input_size(height, width) == (expected.height, expected.width)


# --- the model card's pipeline: AutoImageProcessor + model + post_process_depth_estimation -------------------
def _hf_processor(kind: str):
    """Image processors as the published checkpoints configure them, at the tiny models' sizes."""
    from transformers import DPTImageProcessor

    if kind == "dpt":  # Intel/dpt-large: 384x384 (here 64x64), mean = std = 0.5; the class default filter, bicubic
        return DPTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if kind == "dpt-bilinear":  # the filter kdcache assumes for DPT when no processor config is on disk
        return DPTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 resample=2)
    # Depth Anything V2: 518x518 (here 56x56) keeping the aspect on the /14 grid, bicubic, ImageNet statistics.
    return DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                             resample=3, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))


@pytest.mark.parametrize("kind, saved", [("dpt", True), ("dpt-bilinear", False), ("depth-anything", True),
                                         ("depth-anything", False)])
def test_teacher_maps_equal_the_hf_pipeline_on_camera_frames(tiny, tmp_path, kind, saved):
    """What the model card runs, on 480x640 frames: the processor (read from the folder's preprocessor_config.json
    when `saved`, else kdcache's default for the family), the model, and the bicubic resize back."""
    import shutil

    from transformers import AutoImageProcessor

    folder = tmp_path / "teacher"
    shutil.copytree(tiny["da" if kind == "depth-anything" else "dpt"], folder)
    processor = _hf_processor(kind)
    if saved:
        processor.save_pretrained(folder)
        processor = AutoImageProcessor.from_pretrained(folder)
    teacher = create_teacher(f"hf:{folder}")
    for image in ArraySplit(count=2, size=(480, 640), smooth=True).images:
        inputs = processor(images=image, return_tensors="pt")
        with torch.no_grad():
            outputs = teacher.model(**inputs)
        expected = processor.post_process_depth_estimation(outputs, target_sizes=[(480, 640)])[0]["predicted_depth"]
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        assert teacher.rule(x).shape == inputs["pixel_values"].shape
        got = teacher.predict(x).depth[0]
        # Float rounding only: the gap before kdcache followed the processor was 4 % (DPT) and 9 % (DA).
        assert (got - expected).abs().mean() / expected.abs().mean() < 1e-5


# --- tiny DPT-Hybrid ------------------------------------------------------------------------------------------
def test_dpt_hybrid_exposes_resnet_maps_and_vit_states(tiny):
    teacher = create_teacher(f"hf:{tiny['hybrid']}")
    assert teacher.feature_layers[:4] == ["backbone_stage1", "backbone_stage2", "hidden_3", "hidden_4"]
    images = _images(48, 40)
    out = teacher.predict(images, teacher.feature_layers)
    x = teacher.rule(images)
    assert x.shape[-2:] == (64, 64)
    with torch.no_grad():
        direct = teacher.model(pixel_values=x, output_hidden_states=True)
        maps = teacher.model.dpt.embeddings.backbone(x).feature_maps
    torch.testing.assert_close(out.depth, teacher.rule.resize_back(direct.predicted_depth, (48, 40)))
    torch.testing.assert_close(out.features["backbone_stage1"], maps[0])
    torch.testing.assert_close(out.features["hidden_4"], _grid(direct.hidden_states[4], 4, 4))
    with pytest.raises(KdcacheError, match=r"only runs at 64x64 \(input_size=32\): pass input_size=64"):
        create_teacher(f"hf:{tiny['hybrid']}", input_size=32)


def test_dpt_hybrid_refuses_a_processor_size_it_cannot_run_unless_input_size_fixes_it(tiny, tmp_path):
    import shutil

    folder = shutil.copytree(tiny["hybrid"], tmp_path / "hybrid")
    (folder / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 32, "width": 32}}))
    with pytest.raises(KdcacheError, match=r"only runs at 64x64 \(its image processor asks for 32x32\)"):
        create_teacher(f"hf:{folder}")
    assert create_teacher(f"hf:{folder}", input_size=64).rule(_images(48, 40)).shape[-2:] == (64, 64)


# --- loading errors -------------------------------------------------------------------------------------------
def test_bad_paths_give_one_clear_line(tmp_path):
    with pytest.raises(KdcacheError, match="does not exist"):
        create_teacher(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(KdcacheError, match="no config.json"):
        create_teacher(f"hf:{tmp_path}")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(KdcacheError, match="is a file"):
        create_teacher(f"hf:{tmp_path / 'weights.bin'}")


def test_non_depth_folder_is_refused(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       image_size=16, patch_size=8)).save_pretrained(tmp_path)
    with pytest.raises(KdcacheError, match="not a depth-estimation model"):
        create_teacher(f"hf:{tmp_path}")


def test_precision_is_validated_and_fp32_on_cpu(tiny):
    with pytest.raises(KdcacheError, match="unknown precision 'fp8'"):
        create_teacher(f"hf:{tiny['dpt']}", precision="fp8")
    assert create_teacher(f"hf:{tiny['dpt']}", precision="fp16").precision == "fp32"


# --- none -----------------------------------------------------------------------------------------------------
def test_none_teacher_has_no_space_and_refuses_to_predict():
    teacher = create_teacher("none")
    assert teacher.output_space is None and teacher.feature_layers == [] and teacher.identity == {"name": "none"}
    with pytest.raises(KdcacheError, match="makes no predictions"):
        teacher.predict(_images())


def test_registry_lists_prefix_entries():
    assert {"hf:", "ckpt:"} <= set(list_teachers(include_prefixes=True))
    assert "ckpt:/any/where" in TEACHERS and "hf:org/name" in TEACHERS


# --- ckpt: a kdcache student as teacher -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def student_dirs(tmp_path_factory):
    from kdcache import students
    root = tmp_path_factory.mktemp("students")
    torch.manual_seed(0)
    model = students.create_student("mobilevit-xxs")
    return model, {space: students.save_student(model, root / space, {"output_space": space})
                   for space in ("depth", "disparity")}


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_checkpoint_teacher_matches_student(student_dirs, space):
    model, dirs = student_dirs
    teacher = create_teacher(f"ckpt:{dirs[space]}")
    assert teacher.output_space == space and teacher.preprocess["size_rule"] == "native"
    assert teacher.feature_layers == [f"feat_{i}" for i in range(len(model.feature_channels))]
    images = _images(40, 60)
    out = teacher.predict(images, ["feat_0", "feat_4"])
    with torch.no_grad():
        depth, maps = model.eval()(images, return_features=True)
    # A disparity student is only meaningful through its inverse, so that is what it teaches.
    expected = depth[:, 0] if space == "depth" else 1.0 / depth[:, 0]
    torch.testing.assert_close(out.depth, expected)
    torch.testing.assert_close(out.features["feat_0"], maps[0])
    torch.testing.assert_close(out.features["feat_4"], maps[4])
    assert len(teacher.identity["weights_sha256"]) == 64 and teacher.identity["student"] == "mobilevit-xxs"


def test_checkpoint_teacher_input_size_and_errors(student_dirs, tmp_path):
    _, dirs = student_dirs
    teacher = create_teacher(f"ckpt:{dirs['depth']}", input_size=32)
    assert teacher.rule.input_size(40, 60) == (32, 48) and teacher.predict(_images()).depth.shape == (2, 40, 60)
    with pytest.raises(KdcacheError, match="does not exist"):
        create_teacher(f"ckpt:{tmp_path / 'missing'}")
    with pytest.raises(KdcacheError, match="no student checkpoint"):
        create_teacher(f"ckpt:{tmp_path}")


# --- CLI ------------------------------------------------------------------------------------------------------
def test_cli_lists_every_teacher_with_licence(run_cli):
    code, out, _ = run_cli("teachers")
    assert code == 0
    for name in list_teachers():
        assert name in out
    assert "Intel/dpt-large" in out and "cc-by-nc-4.0 (NC)" in out


def test_cli_describes_a_loaded_teacher_and_fails_cleanly(run_cli, tiny, tmp_path):
    code, out, _ = run_cli("teachers", f"hf:{tiny['da']}", "--input-size", "28")
    assert code == 0 and "hidden_{1,2,3,4}" in out and "weights_sha256" in out
    code, _, err = run_cli("teachers", f"hf:{tmp_path / 'missing'}")
    assert code == 2 and "does not exist" in err and "Traceback" not in err

