"""Moved to :mod:`erpose.runtime.sources` (the torch-free inference path owns it); kept so that
imports written against erpose 0.2 keep working."""

from erpose.runtime.sources import (
    IMAGE_SUFFIXES,
    MAX_CONSECUTIVE_FAILURES,
    STREAM_PREFIXES,
    VIDEO_SUFFIXES,
    Frame,
    Source,
    SourceError,
    is_image_path,
    is_video_path,
    open_source,
    video_fps,
)

__all__ = ["IMAGE_SUFFIXES", "MAX_CONSECUTIVE_FAILURES", "STREAM_PREFIXES", "VIDEO_SUFFIXES", "Frame", "Source",
           "SourceError", "is_image_path", "is_video_path", "open_source", "video_fps"]
