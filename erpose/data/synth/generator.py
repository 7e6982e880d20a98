"""``generate``: render a whole SynthCrowd dataset (images, COCO JSON, YOLO-pose) atomically.

Each image draws its randomness from ``SeedSequence([seed, split, index])``, so the output is
bit-identical for the same arguments whatever the number of workers. Everything is written to a
temporary folder next to the output, then renamed into place: an existing dataset is replaced
as a whole or not at all.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from erpose.data.synth import writers
from erpose.data.synth.figures import SKELETON_JOINTS
from erpose.data.synth.paste import PasteBank
from erpose.data.synth.scene import DENSITIES, render_scene
from erpose.files import atomic_write_text, target_error
from erpose.skeleton import get_skeleton

logger = logging.getLogger(__name__)

#: Bumped whenever the same arguments would produce different images or labels.
GENERATOR_VERSION = 1
MIN_IMGSZ = 64
MAX_IMGSZ = 4096
SPLITS = ("train", "val")
JPEG_QUALITY = 95
META_FILE = "synth.json"  # written last: its presence marks a complete dataset

_worker: dict = {}


def _init_worker(config: dict, own_process: bool = False) -> None:
    if own_process:  # a spawned worker: the workers are the parallelism, OpenCV threads would oversubscribe
        cv2.setNumThreads(1)
    # Never in a forked worker: after the parent has used OpenCV's thread pool, cv2.setNumThreads in
    # a fork child waits forever for the parent's pool threads, which a fork does not copy (that hung
    # `erpose val` on a SynthCrowd preset after any in-process prediction). Nor in-process: it would
    # change the caller's OpenCV settings for good.
    _worker.clear()
    _worker.update(config)
    paste = config.get("paste_from")
    _worker["bank"] = PasteBank.load(*paste) if paste else None


def _render_one(task: tuple[int, int]) -> dict:
    """Render, encode and write image ``index`` of split ``split_id``; return its labels."""
    split_id, index = task
    cfg = _worker
    rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], split_id, index]))
    scene = render_scene(rng, cfg["imgsz"], cfg["density"], cfg["skeleton"], cfg["bank"],
                         cfg.get("stature"), cfg.get("max_people"), cfg.get("clutter", 1.0))
    split = SPLITS[split_id]
    stem = f"{index:06d}"
    root = Path(cfg["root"])
    name = f"{stem}.{cfg['image_format']}"
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if cfg["image_format"] == "jpg" else []
    ok, data = cv2.imencode(f".{cfg['image_format']}", scene.image, params)
    if not ok:
        raise RuntimeError(f"cannot encode {name}")
    (root / "images" / split / name).write_bytes(data.tobytes())
    size = cfg["imgsz"]
    (root / "labels" / split / f"{stem}.txt").write_text(
        writers.yolo_label_text(scene.keypoints, scene.boxes, size, size)
    )
    return {"file_name": name, "keypoints": scene.keypoints, "boxes": scene.boxes, "areas": scene.areas,
            "crowd_index": scene.crowd_index}


def _check_args(train: int, val: int, imgsz: int, preset: str, workers: int, skeleton: str,
                paste_from: tuple[str, str] | None) -> None:
    for name, value in (("train", train), ("val", val)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"--{name} must be a non-negative integer, got {value!r}")
    if train + val == 0:
        raise ValueError("nothing to generate (--train and --val are both 0)")
    if not (MIN_IMGSZ <= imgsz <= MAX_IMGSZ):
        raise ValueError(f"--imgsz {imgsz} out of range {MIN_IMGSZ}..{MAX_IMGSZ} "
                         f"(a person needs at least {MIN_IMGSZ} px of image)")
    if preset not in DENSITIES:
        raise ValueError(f"unknown --preset {preset!r}; known: {', '.join(DENSITIES)}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if skeleton not in SKELETON_JOINTS:
        raise ValueError(f"unknown --skeleton {skeleton!r}; known: {', '.join(SKELETON_JOINTS)}")
    if paste_from is not None and skeleton != "coco17":
        raise ValueError("--paste-from needs --skeleton coco17 (the pasted people carry COCO keypoints)")


def _statistics(labels: dict[str, list[dict]]) -> dict:
    """Counts, persons per image, visible keypoint share and the crowd-index distribution."""
    out = {}
    for split, items in labels.items():
        if not items:
            continue
        persons = np.array([len(it["areas"]) for it in items])
        ci = np.array([it["crowd_index"] for it in items])
        v = np.concatenate([it["keypoints"][..., 2].reshape(-1) for it in items])
        out[split] = {
            "images": len(items),
            "persons": int(persons.sum()),
            "persons_per_image": {"mean": round(float(persons.mean()), 2), "max": int(persons.max())},
            "visible_fraction": round(float((v == 2).sum() / max((v > 0).sum(), 1)), 3),
            "crowd_index": {
                "mean": round(float(ci.mean()), 3),
                "p10_p50_p90": [round(float(q), 2) for q in np.percentile(ci, [10, 50, 90])],
                # CrowdPose's easy/medium/hard split of images by crowd index (< 0.2, < 0.8, rest).
                "easy_medium_hard": [round(float(f), 3) for f in
                                     ((ci < 0.2).mean(), ((ci >= 0.2) & (ci < 0.8)).mean(), (ci >= 0.8).mean())],
            },
        }
    return out


def _write_split(root: Path, split: str, items: list[dict], skeleton, info: dict) -> None:
    images, annotations = [], []
    for k, it in enumerate(items):
        image_id = k + 1
        size = info["imgsz"]
        images.append({"id": image_id, "file_name": it["file_name"], "width": size, "height": size,
                       "crowdIndex": it["crowd_index"]})
        annotations += writers.coco_annotations(it["keypoints"], it["boxes"], it["areas"], image_id,
                                                len(annotations) + 1, skeleton)
    writers.dump_json(root / "annotations" / f"{split}.json",
                      writers.coco_document(images, annotations, skeleton, info))


def _publish(tmp: Path, out: Path, replace: bool) -> Path:
    """Move the finished ``tmp`` folder to ``out``; the old ``out`` goes only once the new one is in."""
    if out.exists() and not replace:
        shutil.rmtree(tmp, ignore_errors=True)  # someone else finished first: keep theirs
        return out
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if not out.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent writer published between our checks
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def generate(out_dir: str | Path, *, train: int, val: int, imgsz: int = 320, seed: int = 0,
             preset: str = "mixed", workers: int = 1, skeleton: str = "coco17",
             paste_from: tuple[str, str] | None = None, progress: bool = False,
             image_format: str = "jpg", replace: bool = True, stature: tuple[float, float] | None = None,
             max_people: int | None = None, clutter: float = 1.0) -> Path:
    """Generate a SynthCrowd dataset.

    Layout written under ``out_dir``: ``data.yaml`` (YOLO-pose), ``images/{train,val}/*.jpg``,
    ``labels/{train,val}/*.txt`` (YOLO-pose), ``annotations/{train,val}.json`` (COCO keypoints with
    image-level ``crowdIndex``) and ``synth.json`` (arguments and statistics).

    Args:
        out_dir: dataset root; replaced as a whole if it holds a previous SynthCrowd dataset.
        train, val: number of images per split (>= 0, not both 0).
        imgsz: square image side in pixels (>= 64).
        seed: base seed; image i of a split uses SeedSequence([seed, split, i]).
        preset: layout density, ``sparse``, ``mixed`` or ``crowd``.
        workers: processes rendering in parallel (the output does not depend on it).
        skeleton: ``coco17`` or ``crowdpose14``.
        paste_from: (COCO JSON, image folder) of real people to paste instead of drawn figures.
        progress: show a tqdm progress bar on stderr.
        image_format: ``jpg`` (quality 95) or ``png``.
        replace: when False and ``out_dir`` already holds a dataset, keep it (used by ensure_preset).
        stature: (low, high) person heights as fractions of ``imgsz`` (default 16 px .. 0.9).
        max_people: at most this many people per image (default 40).
        clutter: occluders, distractors and background shapes drawn, 0..1 (default 1: all).

    Returns:
        the dataset root.

    Raises:
        ValueError: bad arguments, or ``out_dir`` exists and is not a SynthCrowd dataset.
        FileNotFoundError: a ``paste_from`` path is missing.
    """
    _check_args(train, val, imgsz, preset, workers, skeleton, paste_from)
    if stature is not None and not (len(stature) == 2 and 0.0 <= stature[0] < stature[1] <= 1.5):
        raise ValueError(f"stature must be (low, high) fractions of imgsz with 0 <= low < high <= 1.5, got {stature}")
    if max_people is not None and max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    if not 0.0 <= clutter <= 1.0:
        raise ValueError(f"clutter must be in [0, 1], got {clutter}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be jpg or png, got {image_format!r}")
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and any(out.iterdir()) and not (out / META_FILE).is_file():
        raise ValueError(f"{out} exists and is not a SynthCrowd dataset; refusing to overwrite it")
    paste = (str(paste_from[0]), str(paste_from[1])) if paste_from else None
    if paste:
        PasteBank.load(*paste)  # fail early, in the caller's process, on a bad --paste-from
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    sk = get_skeleton(skeleton)
    info = {"description": "SynthCrowd synthetic crowded people (erpose)", "generator_version": GENERATOR_VERSION,
            "seed": seed, "preset": preset, "imgsz": imgsz, "skeleton": skeleton,
            "paste_from": list(paste) if paste else None,
            "stature": list(stature) if stature else None, "max_people": max_people, "clutter": clutter}
    config = {"root": str(tmp), "seed": seed, "imgsz": imgsz, "density": preset, "skeleton": skeleton,
              "image_format": image_format, "paste_from": paste,
              "stature": tuple(stature) if stature else None, "max_people": max_people, "clutter": clutter}
    try:
        try:
            for sub in ("images", "labels"):
                for split in SPLITS:
                    (tmp / sub / split).mkdir(parents=True)
            (tmp / "annotations").mkdir()
        except OSError as exc:  # staged next to ``out``: an unwritable folder is about ``out``
            raise target_error(exc, out) from None
        tasks = [(s, i) for s, count in enumerate((train, val)) for i in range(count)]
        results = _run(tasks, config, workers, progress)
        labels = {split: [r for (s, _), r in zip(tasks, results) if s == k] for k, split in enumerate(SPLITS)}
        for split in SPLITS:
            _write_split(tmp, split, labels[split], sk, info)
        atomic_write_text(tmp / "data.yaml", writers.data_yaml(out, sk))
        meta = {**info, "train": train, "val": val, "statistics": _statistics(labels)}
        atomic_write_text(tmp / META_FILE, json.dumps(meta, indent=1))
        return _publish(tmp, out, replace)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _run(tasks: list[tuple[int, int]], config: dict, workers: int, progress: bool) -> list[dict]:
    bar = tqdm(total=len(tasks), unit="img", desc="synth", disable=not progress, leave=False)
    try:
        if workers == 1 or len(tasks) < 2 * workers:
            _init_worker(config)
            out = []
            for t in tasks:
                out.append(_render_one(t))
                bar.update()
            return out
        # fork starts workers in milliseconds; the workers only use numpy and OpenCV.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(config, method == "spawn")) as pool:
            out = []
            for r in pool.imap(_render_one, tasks, chunksize=8):
                out.append(r)
                bar.update()
            return out
    finally:
        bar.close()
