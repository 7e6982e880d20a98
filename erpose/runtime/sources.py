"""Prediction sources: images, folders, globs, video files, cameras and streams as one frame iterator.

Imports only numpy, OpenCV and ``erpose.images``, so the torch-free runtime can reuse it. Every source yields
``(frame, path, frame_index)`` with ``frame`` an (H, W, 3) uint8 BGR image, ``path`` the file (or
camera / URL) it came from and ``frame_index`` the frame number inside a video (0 for an image).
Unreadable images (truncated JPEGs and images above the pixel limit included, see
``erpose.images``) and frames are logged and skipped, never raised: one bad file must not stop a
folder.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from erpose.images import ImageFileError, read_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".pbm", ".pgm",
                            ".ppm", ".jp2", ".dng", ".mpo", ".heic"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm",
                            ".flv", ".ts", ".gif", ".asf"})
STREAM_PREFIXES = ("rtsp://", "rtmp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "srt://")

#: A video stops after this many unreadable frames in a row (a damaged file can report frames
#: that never come); a live stream is given the same number of retries.
MAX_CONSECUTIVE_FAILURES = 30

Frame = tuple[np.ndarray, str, int]


class SourceError(ValueError):
    """A source that cannot be opened: missing path, empty folder or glob, unknown kind."""


@dataclass
class Source:
    """An opened prediction source; iterate it for ``(frame BGR uint8, path, frame_index)``.

    Attributes:
        kind: ``"images"`` (files, possibly mixed with videos), ``"camera"``, ``"stream"`` or ``"arrays"``.
        items: the files (``"images"``), the camera index or URL (one item), or array names.
        total: number of frames expected, when known (image count plus video frame counts); for tqdm.
        skipped: ``(path, frame_index, reason)`` of every unreadable image or frame so far.
    """

    kind: str
    items: list[str]
    total: int | None = None
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    _arrays: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def is_live(self) -> bool:
        """Camera or stream: endless, written as a video."""
        return self.kind in ("camera", "stream")

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "arrays":
            yield from self._iter_arrays()
        elif self.is_live:
            yield from self._iter_capture(self.items[0], live=True)
        else:
            for path in self.items:
                if is_video_path(path):
                    yield from self._iter_capture(path, live=False)
                else:
                    try:
                        image = read_image(path)
                    except ImageFileError as exc:
                        self._skip(path, 0, exc.reason)
                        continue
                    yield image, path, 0

    def _skip(self, path: str, index: int, reason: str) -> None:
        log.warning("skipped %s (frame %d): %s", path, index, reason)
        self.skipped.append((path, index, reason))

    def _iter_arrays(self) -> Iterator[Frame]:
        for name, array in zip(self.items, self._arrays or []):
            image = np.asarray(array)
            if image.ndim == 2:  # grayscale: replicate to BGR so every frame has 3 channels
                image = np.repeat(image[..., None], 3, axis=2)
            if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
                self._skip(name, 0, f"expected an (H, W, 3) BGR image, got shape {image.shape}")
                continue
            if image.dtype != np.uint8:
                self._skip(name, 0, f"expected uint8 pixels, got {image.dtype}")
                continue
            yield image, name, 0

    def _iter_capture(self, target: str, live: bool) -> Iterator[Frame]:
        capture = cv2.VideoCapture(int(target) if target.isdigit() else target)
        if not capture.isOpened():
            if live:
                raise SourceError(f"cannot open {'camera' if target.isdigit() else 'stream'} {target}")
            self._skip(target, 0, "unreadable video")
            return
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
        index, failures = 0, 0
        try:
            while True:
                ok, frame = capture.read()
                if ok and frame is not None and frame.size:
                    failures = 0
                    yield frame, target, index
                else:
                    # A file ends when the reported count is reached; before that (or on a live
                    # stream) a failed read is a damaged frame: report it and try the next one.
                    if (not live and index >= expected) or failures >= MAX_CONSECUTIVE_FAILURES:
                        break
                    failures += 1
                    self._skip(target, index, "unreadable frame")
                index += 1
        finally:
            capture.release()


def is_video_path(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_image_path(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def video_fps(path: str | int, default: float = 30.0) -> float:
    """Frame rate of a video, camera or stream, or ``default`` when it reports none."""
    capture = cv2.VideoCapture(int(path) if str(path).isdigit() else str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else default


def _media_in(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if os.path.isfile(p) and (is_image_path(p) or is_video_path(p))]


def _count_frames(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        if is_video_path(path):
            capture = cv2.VideoCapture(path)
            total += max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if capture.isOpened() else 0
            capture.release()
        else:
            total += 1
    return total


def _files(paths: list[str]) -> Source:
    return Source("images", paths, total=_count_frames(paths))


def open_source(source: str | int | os.PathLike | np.ndarray | Sequence) -> Source:
    """Resolve a user source into a :class:`Source`.

    Args:
        source: one of
            - an image or video file path;
            - a folder (its images and videos, sorted by name, not recursive);
            - a glob pattern (``"data/**/*.jpg"``; ``**`` recurses);
            - a camera index (``0`` or ``"0"``);
            - a stream URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://``, ``srt://``);
            - an (H, W, 3) uint8 BGR array, or a list of arrays or of paths.

    Returns:
        The opened source; files are listed now, frames are read lazily while iterating.

    Raises:
        SourceError: a path that does not exist, a folder or glob with no image or video, a file
            of another kind, or an input of an unsupported type.
    """
    if isinstance(source, np.ndarray):
        return Source("arrays", ["image0"], total=1, _arrays=[source])
    if isinstance(source, (list, tuple)):
        if all(isinstance(s, np.ndarray) for s in source):
            return Source("arrays", [f"image{i}" for i in range(len(source))], total=len(source),
                          _arrays=list(source))
        paths = [os.fspath(s) for s in source]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise SourceError(f"source file not found: {missing[0]}")
        unknown = [p for p in paths if not (is_image_path(p) or is_video_path(p))]
        if unknown:
            raise SourceError(f"not an image or video file: {unknown[0]}")
        return _files(paths)
    if isinstance(source, bool) or not isinstance(source, (str, int, os.PathLike)):
        raise SourceError(f"unsupported source type {type(source).__name__}")
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return Source("camera", [str(int(source))])
    text = os.fspath(source)
    if text.lower().startswith(STREAM_PREFIXES):
        return Source("stream", [text])
    if os.path.isdir(text):
        paths = _media_in(sorted(os.path.join(text, name) for name in os.listdir(text)))
        if not paths:
            raise SourceError(f"no images or videos in folder {text}")
        return _files(paths)
    if os.path.isfile(text):
        if not (is_image_path(text) or is_video_path(text)):
            raise SourceError(f"not an image or video file: {text} (suffix {Path(text).suffix or 'none'})")
        return _files([text])
    if glob.has_magic(text):
        paths = _media_in(sorted(glob.glob(text, recursive=True)))
        if not paths:
            raise SourceError(f"no images or videos match {text}")
        return _files(paths)
    raise SourceError(
        f"source not found: {text} (expected an image, video, folder, glob, camera index or stream URL)"
    )
