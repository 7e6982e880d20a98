"""erpose: ER-Pose, keypoint-driven, box-free, NMS-free real-time multi-person pose estimation.

Importing ``erpose`` does not import torch, so that ``erpose.runtime`` works without it.
"""

from __future__ import annotations

from erpose.skeleton import COCO17, CROWDPOSE14, Skeleton

__version__ = "0.1.0"

__all__ = ["COCO17", "CROWDPOSE14", "ERPose", "Skeleton", "__version__"]


def __getattr__(name: str):
    # ERPose pulls in torch; import it on first use so `import erpose` stays torch-free.
    if name == "ERPose":
        from erpose.api import ERPose

        return ERPose
    raise AttributeError(f"module 'erpose' has no attribute {name!r}")
