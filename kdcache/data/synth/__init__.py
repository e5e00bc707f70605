"""The procedural synthetic world: NYU-like rooms rendered on demand with exact metric depth.

Importing this package registers `synth-train`, `synth-test`, `synth-aux`, `synth-aux-far` and `synth-aux-vast`
(see `kdcache.data.synth.splits`). Modules, in reading order: camera (pinhole, rays), textures and
palette (materials), shapes and scene (what a room holds), raycast, lighting and render (pixels),
splits (datasets), preview (a contact sheet for the docs).
"""

from kdcache.data.synth.camera import Intrinsics, Pose, nyu_intrinsics
from kdcache.data.synth.scene import FAR, INDOOR, VAST, Scene, World, sample_scene
from kdcache.data.synth.splits import SynthSplit

# `render` is not re-exported: the name would shadow the `kdcache.data.synth.render` module.
__all__ = ["FAR", "INDOOR", "VAST", "Intrinsics", "Pose", "Scene", "SynthSplit", "World", "nyu_intrinsics", "sample_scene"]
