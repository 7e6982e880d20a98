"""Samples/s of the full training pipeline (mosaic + affine + flip + HSV) on one worker.

Measures ``PoseDataset.__getitem__`` in one process with OpenCV limited to one thread (what one
DataLoader worker does), reading from disk and with the RAM image cache.

    python benchmarks/bench_dataloader.py                 # generated 640x480 JPEGs with persons
    python benchmarks/bench_dataloader.py --data ../shared/data/real/tiny_coco/annotations/person_keypoints_train2017.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from erpose.data.dataset import PoseDataset
from erpose.data.source import load_source
from erpose.data.transforms import AugmentConfig
from erpose.skeleton import COCO17_NAMES


def make_dataset(root: Path, num_images: int, seed: int = 0) -> Path:
    """COCO-layout dataset of smooth random 640x480 JPEGs, 1-8 persons each."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(1, num_images + 1):
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)  # upsampled noise: photo-like JPEG size
        image = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / "images" / f"{i:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(1, 9)):
            cx, cy, s = rng.uniform(80, 560), rng.uniform(80, 400), rng.uniform(20, 80)
            k = np.stack([cx + rng.normal(0, s, 17), cy + rng.normal(0, s, 17), np.full(17, 2.0)], 1)
            k[:, 0] = k[:, 0].clip(0, 639)
            k[:, 1] = k[:, 1].clip(0, 479)
            x0, y0 = k[:, :2].min(0)
            x1, y1 = k[:, :2].max(0)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "keypoints": k.round(1).ravel().tolist(), "num_keypoints": 17,
                         "area": float((x1 - x0) * (y1 - y0) * 0.6), "bbox": [x0, y0, x1 - x0, y1 - y0]})
    path = root / "annotations" / "person_keypoints_bench.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]}))
    return path


def measure(dataset: PoseDataset, samples: int) -> tuple[float, float]:
    """(samples/s wall, samples/s of process CPU time) over ``samples`` items after a warm-up."""
    for i in range(5):
        dataset[i]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="COCO JSON or data YAML (default: generated images)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=64, help="generated images")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one DataLoader worker = one core

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(make_dataset(Path(tmp), args.images))
        source = load_source(data, args.split)
        cfg = AugmentConfig()  # mosaic 1.0, fliplr 0.5, scale 0.5, translate 0.1, HSV 0.015/0.7/0.4
        print(f"data: {data if args.data else f'{args.images} generated 640x480 JPEGs'}, imgsz {args.imgsz}, "
              f"{args.samples} samples, mosaic {cfg.mosaic}, one process, cv2 threads 1")
        for name, cache in (("disk", False), ("ram cache", True)):
            dataset = PoseDataset(source, args.imgsz, cfg, cache_images=cache)
            wall, cpu = measure(dataset, args.samples)
            print(f"{name:>10}: {wall:7.1f} samples/s wall, {cpu:7.1f} samples/s per CPU-second")


if __name__ == "__main__":
    main()
