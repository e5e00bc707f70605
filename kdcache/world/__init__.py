"""The procedural synthetic world: NYU-like rooms rendered on demand with exact metric depth.

A renderer, not a dataset: `kdcache.data.synth` turns it into the `synth-*` splits. Nothing here reads files or
knows about splits. Modules, in reading order: camera (pinhole, rays), materials (textures and the palette),
shapes and scene (what a room holds and how one is drawn at random; draws are its pre-drawn random numbers),
raycast (hits and surface frames), lighting (irradiance and baked floor shadows) and render (pixels).
"""

from kdcache.world.camera import Intrinsics, Pose, nyu_intrinsics
from kdcache.world.scene import FAR, INDOOR, VAST, Scene, World, sample_scene

# `render` is not re-exported: the name would shadow the `kdcache.world.render` module.
__all__ = ["FAR", "INDOOR", "VAST", "Intrinsics", "Pose", "Scene", "World", "nyu_intrinsics", "sample_scene"]
