"""Named SynthCrowd datasets (sizes, density) and the cache that generates each one once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from erpose.data.synth.generator import GENERATOR_VERSION, META_FILE, generate


@dataclass(frozen=True)
class SynthPreset:
    """A named dataset recipe.

    Attributes:
        train, val: images per split.
        imgsz: square image side in pixels.
        density: layout density, ``sparse``, ``mixed`` or ``crowd``.
        seed: base seed.
        skeleton: ``coco17`` or ``crowdpose14``.
        description: one line for docs and ``--help``.
        stature: (low, high) person heights as fractions of ``imgsz``; None: 16 px .. 0.9.
        max_people: people per image cap; None: the layout's own (up to 40).
        clutter: occluders, distractors and background shapes, 0..1 (1: all).
    """

    train: int
    val: int
    imgsz: int
    density: str = "mixed"
    seed: int = 0
    skeleton: str = "coco17"
    description: str = ""
    stature: tuple[float, float] | None = None
    max_people: int | None = None
    clutter: float = 1.0

    def fingerprint(self) -> str:
        """Short hash of everything that changes the images, so a retuned preset is regenerated."""
        fields = dataclasses.asdict(self)
        fields.pop("description")
        if fields["clutter"] == 1.0:
            fields.pop("clutter")  # the default, so presets fingerprinted before the field keep their folders
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


#: The named datasets. ``synthcrowd-train`` is what ``erpose train`` uses without ``--data``;
#: its numbers are meant to be tuned here (and only here) by the trainer's owners.
PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset(16, 8, 160, "mixed", description="tests: 24 images at 160 px, a second or two"),
    "synthcrowd-train": SynthPreset(
        1500, 150, 128, "sparse", stature=(0.45, 0.95), max_people=3, clutter=0.0,
        description="default training set of `erpose train`: 1,500 + 150 images at 128 px, 1-3 large people each, "
                    "plain backgrounds",
    ),
    "synthcrowd-s": SynthPreset(2000, 500, 320, "mixed", description="benchmark set, mixed density"),
    "synthcrowd-crowd": SynthPreset(2000, 500, 320, "crowd", description="benchmark set, dense crowds only"),
    "synthcrowd-sparse": SynthPreset(2000, 500, 320, "sparse", description="benchmark set, sparse scenes only"),
}


def default_cache_dir() -> Path:
    """``$ERPOSE_CACHE/synth`` when set, else ``~/.cache/erpose/synth``."""
    base = os.environ.get("ERPOSE_CACHE")
    return Path(base).expanduser() / "synth" if base else Path.home() / ".cache" / "erpose" / "synth"


def get_preset(name: str) -> SynthPreset:
    """The preset called ``name``; raises ValueError naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown SynthCrowd preset {name!r}; known: {', '.join(PRESETS)}") from None


def ensure_preset(name: str, cache_dir: str | Path | None = None, workers: int | None = None,
                  progress: bool = False) -> Path:
    """Return the root of preset ``name``, generating it first when it is not in the cache.

    The dataset lives at ``<cache_dir>/<name>-v<GENERATOR_VERSION>-<preset fingerprint>`` (cache_dir defaults to
    ``default_cache_dir()``). Safe when several processes call it at once: each renders into its
    own temporary folder and the first rename wins; the others keep the published one.

    Args:
        name: a key of ``PRESETS``.
        cache_dir: folder holding the generated presets.
        workers: rendering processes (default: up to 2, or the CPU count if lower).
        progress: show a progress bar while generating.

    Raises:
        ValueError: unknown preset name.
    """
    preset = get_preset(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    # The fingerprint makes a retuned preset (or a new generator) a new folder, never a stale reuse.
    out = root / f"{name}-v{GENERATOR_VERSION}-{preset.fingerprint()}"
    if (out / META_FILE).is_file():
        return out
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    return generate(out, train=preset.train, val=preset.val, imgsz=preset.imgsz, seed=preset.seed,
                    preset=preset.density, workers=workers, skeleton=preset.skeleton, progress=progress,
                    replace=False, stature=preset.stature, max_people=preset.max_people,
                    clutter=preset.clutter)
