"""Datasets of the ablation study: the training preset and the evaluation sets.

Evaluation sets are named, so that a table row always says what it was scored on:

    synthcrowd-s       the val split of the preset (500 mixed scenes at 320 px)
    synthcrowd-crowd   the val split of the crowd preset (500 dense scenes)
    paste-real         crowd scenes composed from the *val* people of ``tiny_coco`` (real COCO
                       photos cut along their polygons); its training counterpart
                       ``paste-real-train`` uses the *train* people only, so the two never share
                       a person. Skipped when ``../shared/data/real/tiny_coco`` is absent.

Only the val split of an evaluation set is rendered: image ``i`` of a split depends only on
``(seed, split, i)``, so the val-only rendering of a preset is bit-identical to the preset's own
val split (and costs a fifth of the time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Training sets this study adds to ``erpose.data.synth.PRESETS`` (in this process only): a
#: learnable-in-minutes set for CPU budgets: sparse scenes of at most 3 people, 45-95 % of the
#: image tall, rendered at 128 px.
EXTRA_PRESETS = {
    "synthcrowd-easy128": dict(train=1500, val=150, imgsz=128, density="sparse", seed=0, stature=(0.45, 0.95),
                               max_people=3, description="ablation: easy sparse set for CPU budgets"),
    # P3: the mixed / crowd split at the main command's scale (128 px, large people, plain
    # backgrounds) so that a from-scratch CPU run of ~30 epochs gets to an AP where rows differ.
    "synthcrowd-mixed128": dict(train=1500, val=200, imgsz=128, density="mixed", seed=0, stature=(0.45, 0.95),
                                max_people=6, clutter=0.0,
                                description="ablation P3: sparse scenes, groups and crowds of up to 6 people"),
    "synthcrowd-crowd128": dict(train=1500, val=200, imgsz=128, density="crowd", seed=1, stature=(0.45, 0.95),
                                max_people=6, clutter=0.0,
                                description="ablation P3: dense crowds of up to 6 people"),
}
PASTE_VAL_IMAGES = 300
PASTE_TRAIN_IMAGES = 2000


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: its name, annotation JSON and image folder."""

    name: str
    annotations: Path
    images: Path


def register_presets() -> None:
    """Add ``EXTRA_PRESETS`` to the preset table, so that ``TrainConfig(data=name)`` finds them."""
    from erpose.data.synth import PRESETS
    from erpose.data.synth.presets import SynthPreset

    for name, fields in EXTRA_PRESETS.items():
        PRESETS.setdefault(name, SynthPreset(**fields))


def real_data_root() -> Path:
    """``$ERPOSE_REAL_DATA`` or ``../shared/data/real`` relative to the repository root."""
    return Path(os.environ.get("ERPOSE_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


def tiny_coco() -> Path | None:
    """The tiny_coco folder, or None when it is absent (the paste-real set is then skipped)."""
    root = real_data_root() / "tiny_coco"
    return root if (root / "annotations" / "person_keypoints_val2017.json").is_file() else None


def _render(out: Path, **kwargs) -> Path:
    from erpose.data.synth import generate

    if (out / "synth.json").is_file():  # written last by the generator: the dataset is complete
        return out
    return generate(out, replace=False, **kwargs)


def ensure_eval_set(name: str, data_dir: Path, workers: int = 1) -> EvalSet | None:
    """Render (once) and return evaluation set ``name``; None for paste-real without tiny_coco.

    Args:
        name: a SynthCrowd preset name or ``paste-real``.
        data_dir: folder for the rendered evaluation sets (``runs/ablation/data``).
        workers: rendering processes.

    Raises:
        ValueError: unknown name.
    """
    from erpose.data.synth import PRESETS

    register_presets()
    if name == "paste-real":
        coco = tiny_coco()
        if coco is None:
            return None
        root = _render(data_dir / "paste-real-val", train=0, val=PASTE_VAL_IMAGES, imgsz=320, seed=0,
                       preset="crowd", workers=workers,
                       paste_from=(str(coco / "annotations" / "person_keypoints_val2017.json"), str(coco / "val2017")))
    elif name in PRESETS:
        preset = PRESETS[name]
        root = _render(data_dir / f"{name}-val", train=0, val=preset.val, imgsz=preset.imgsz, seed=preset.seed,
                       preset=preset.density, workers=workers, skeleton=preset.skeleton,
                       stature=preset.stature, max_people=preset.max_people, clutter=preset.clutter)
    else:
        raise ValueError(f"unknown evaluation set {name!r}: a SynthCrowd preset or paste-real")
    return EvalSet(name, root / "annotations" / "val.json", root / "images" / "val")


def ensure_train_data(name: str, data_dir: Path, workers: int = 1) -> tuple[str, Path]:
    """The ``TrainConfig.data`` string and dataset root of training set ``name``.

    ``paste-real-train`` renders crowd scenes from the *train* people of tiny_coco (train split)
    and takes its val split from the paste-real evaluation set (val people): a data YAML joins them.
    """
    from erpose.data.synth import PRESETS, ensure_preset

    register_presets()
    if name in PRESETS:
        return name, Path(ensure_preset(name, workers=workers))
    if name != "paste-real-train":
        return name, Path(name).parent
    coco = tiny_coco()
    if coco is None:
        raise FileNotFoundError(f"{real_data_root() / 'tiny_coco'}: needed for paste-real-train")
    train_root = _render(data_dir / "paste-real-train", train=PASTE_TRAIN_IMAGES, val=0, imgsz=320, seed=1,
                         preset="crowd", workers=workers,
                         paste_from=(str(coco / "annotations" / "person_keypoints_train2017.json"),
                                     str(coco / "train2017")))
    val = ensure_eval_set("paste-real", data_dir, workers)
    yaml_path = data_dir / "paste-real-train.yaml"
    text = (train_root / "data.yaml").read_text().splitlines()
    keep = [line for line in text if not line.startswith(("path:", "train:", "val:"))]
    yaml_path.write_text("\n".join([f"path: {data_dir.resolve()}", f"train: {train_root.resolve()}/images/train",
                                    f"val: {val.images.parent.parent.resolve()}/images/val", *keep]) + "\n")
    return str(yaml_path), train_root
