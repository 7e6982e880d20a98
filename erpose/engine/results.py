"""Moved to :mod:`erpose.runtime.results` (the torch-free inference path owns it); kept so that
imports written against erpose 0.2 keep working."""

from erpose.runtime.results import KEYPOINT_CONF_THRESHOLD, Keypoints, Results, boxes_from_keypoints

__all__ = ["KEYPOINT_CONF_THRESHOLD", "Keypoints", "Results", "boxes_from_keypoints"]
