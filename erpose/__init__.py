"""erpose: ER-Pose, keypoint-driven, box-free, NMS-free real-time multi-person pose estimation.

Importing ``erpose`` does not import torch, so that ``erpose.runtime`` works without it.
"""

from __future__ import annotations

from erpose.skeleton import COCO17, CROWDPOSE14, Skeleton

__version__ = "0.1.0"

__all__ = ["COCO17", "CROWDPOSE14", "Skeleton", "__version__"]
