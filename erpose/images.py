"""Reading image files: refuse what must not be decoded, name the file and the reason.

``cv2.imread`` decodes a truncated JPEG without an error: libjpeg prints an anonymous "Premature
end of JPEG file" and the missing lower part comes back grey. It also decodes an image of any
size, so one 40000 x 40000 file takes 4.8 GB. :func:`read_image` reads the file once, checks it,
then decodes the same bytes with OpenCV (so EXIF orientation and colours are what ``cv2.imread``
gives). No torch here: the torch-free runtime uses it too.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from erpose.limits import MAX_IMAGE_PIXELS

JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
JPEG_SOS = 0xDA
#: Markers without a length field (TEM, RST0..7, SOI, EOI).
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})


class ImageFileError(OSError):
    """An image file that cannot be used: unreadable, truncated, or above ``MAX_IMAGE_PIXELS``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as an (H, W, 3) uint8 BGR array, as ``cv2.imread(path, IMREAD_COLOR)``.

    Raises:
        ImageFileError: the file cannot be read or decoded, is a truncated JPEG, or has more than
            ``erpose.limits.MAX_IMAGE_PIXELS`` pixels (checked from the header, before decoding).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageFileError(path, f"cannot read image ({exc.strerror or exc})") from None
    check_image_bytes(data, path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageFileError(path, "cannot read image (not a decodable image file)")
    return image


def check_image_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Raise :class:`ImageFileError` for a truncated JPEG or an image above the pixel limit."""
    if data[:2] == JPEG_SOI and not jpeg_is_complete(data):
        raise ImageFileError(path, "truncated JPEG (no end-of-image marker after the image data)")
    size = _header_size(data, path)
    if size is not None:
        check_pixels(*size, path)


def check_pixels(width: int, height: int, path: str | os.PathLike) -> None:
    """Raise :class:`ImageFileError` when ``width * height`` is above ``MAX_IMAGE_PIXELS``."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageFileError(
            path, f"{width}x{height} = {width * height / 1e6:.0f} megapixels is above the limit of "
                  f"{MAX_IMAGE_PIXELS / 1e6:.0f} (see README.md, Limits)")


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG's image data ends with an end-of-image marker.

    The header segments (where an EXIF thumbnail with its own end marker lives) are skipped by
    their lengths; in the entropy-coded data after the first start-of-scan a 0xFF byte is always
    followed by 0x00 or a marker, so the first ``FF D9`` there is the image's end. Data appended
    after it (motion photos, maker trailers) does not matter.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a marker where one must be: damaged header
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == JPEG_SOS:
            break
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    else:
        return False  # the file ends inside the header
    return data.find(JPEG_EOI, pos) != -1


def _header_size(data: bytes, path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the header, or None when Pillow does not know the format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # erpose's own limit applies
            with Image.open(io.BytesIO(data)) as image:
                return int(image.width), int(image.height)
    except Image.DecompressionBombError:  # Pillow's own refusal, at twice its 89 megapixels
        raise ImageFileError(path, f"more pixels than the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                                   "(see README.md, Limits)") from None
    except Exception:  # unknown to Pillow (OpenCV may still decode it) or damaged: OpenCV decides
        return None
