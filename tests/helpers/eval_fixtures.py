"""Small shared builders for the evaluation / infer / export tests: an in-memory labeled split and a tiny student."""

from __future__ import annotations

import numpy as np

from kdcache.data.sample import Sample

SPLIT = "synth-test[:2]"  # the real synthetic split: rendered on the fly, no files (pass --size 48x64 to eval)
TINY_STUDENT = "test_efficientnet+nnconv5"  # timm's test encoder: ~180 k params, milliseconds per image


class ArraySplit:
    """A labeled split whose depth is a known function of the image: d = 1 + 5 * red / 255 (metres)."""

    labeled = True

    def __init__(self, name: str = "array-split", count: int = 3, size=(48, 64), space: str = "depth",
                 smooth: bool = False):
        self.name, self.space = name, space
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (count, *size, 3), dtype=np.uint8)
        if smooth:  # camera-like: structure at every scale survives a resize, where pixel noise averages out
            self.images = np.stack([_smooth_scene(image, size) for image in self.images])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        image = self.images[index]
        depth = (1.0 + 5.0 * image[..., 0] / 255.0).astype(np.float32)
        return Sample(f"{index:03d}", image, depth, np.ones(depth.shape, bool), self.space, {"dataset": "synth"})


def _smooth_scene(noise: np.ndarray, size) -> np.ndarray:
    """A smooth image with edges: a coarse grid of the noise's colours, bicubic-enlarged, plus a dark bar."""
    from PIL import Image

    coarse = Image.fromarray(noise[:6, :8]).resize((size[1], size[0]), Image.Resampling.BICUBIC)
    image = np.array(coarse)
    image[size[0] // 3: size[0] // 2, size[1] // 5: size[1] // 2] //= 4
    return image


def save_tiny_student(directory, output_space: str = "depth", resolution=(48, 64)):
    """A random-weight student checkpoint in the real format (save_student)."""
    from kdcache.students import create_student, save_student

    import torch

    torch.manual_seed(0)
    model = create_student(TINY_STUDENT)
    # An untrained student predicts ~init_depth everywhere; a random head makes outputs vary across the image,
    # so parity and quantization checks compare real structure, not a constant.
    torch.nn.init.normal_(model.head.weight, std=2.0)
    return save_student(model, directory, {"output_space": output_space, "resolution": list(resolution)})
