"""SynthCrowd: synthetic crowded-people pose data with exact occlusion labels.

Public API:
    generate(out_dir, *, train, val, imgsz, seed, preset, workers, skeleton, paste_from, progress)
    PRESETS / SynthPreset / ensure_preset(name, cache_dir)
    render_scene(rng, imgsz, density, skeleton) -> SceneRender (image, labels, per-person masks)
    DENSITIES: the layout densities ``sparse``, ``mixed``, ``crowd``.
    VideoConfig / render_video(config, index) -> SynthVideo / generate_video(out_dir, sequences, config):
        sequences of walking people with track ids (mp4 + PoseTrack18-style JSON).
"""

from __future__ import annotations

from erpose.data.synth.generator import GENERATOR_VERSION, generate
from erpose.data.synth.presets import PRESETS, SynthPreset, default_cache_dir, ensure_preset, get_preset
from erpose.data.synth.scene import DENSITIES, SceneRender, render_scene
from erpose.data.synth.video import VIDEO_PRESETS, SynthVideo, VideoConfig, generate_video, render_video
from erpose.data.synth.writers import crowd_index

__all__ = [
    "DENSITIES", "GENERATOR_VERSION", "PRESETS", "SceneRender", "SynthPreset", "crowd_index",
    "VIDEO_PRESETS", "SynthVideo", "VideoConfig", "default_cache_dir", "ensure_preset", "generate",
    "generate_video", "get_preset", "render_scene", "render_video",
]
