"""Upper bounds on the sizes a user can ask for, so a typo is a one-line error, not an OOM kill.

``erpose predict --imgsz 100000`` would letterbox every image onto a 100000 x 100000 canvas
(about 22 GB before the model runs) and be killed by the operating system. Every size argument is
checked against these limits where it enters the library (``Predictor``, ``validate``,
``TrainConfig``, ``OnnxExportConfig``) and every image file is checked before it is decoded
(``erpose.images``). The limits are far above any sensible use; README.md ("Limits") lists them.
No torch here: the torch-free runtime uses it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from erpose.config import ConfigError

log = logging.getLogger(__name__)

#: Network input side, pixels (8192 x 8192: about 0.8 GB of float32 input per image).
MAX_IMGSZ = 8192
#: Images per forward pass or training step.
MAX_BATCH = 1024
#: Persons kept per image (a 640 px input has 8400 anchor points; COCO scores the best 20).
MAX_DET = 10_000
#: Pixels of one image file (width x height), checked from its header before decoding:
#: 100 megapixels is about 300 MB as a BGR array.
MAX_IMAGE_PIXELS = 100_000_000


class LimitError(ConfigError):
    """A size above its limit in ``erpose.limits``, not a positive integer, or not a multiple of a stride."""


def check_size(name: str, value: object, limit: int, unit: str = "") -> int:
    """``value`` as an int when it is a positive integer not above ``limit``.

    Args:
        name: the argument as the user wrote it (``"imgsz"``, ``"batch"``...), for the message.
        value: the value to check.
        limit: the largest allowed value.
        unit: appended to the numbers in the message (``" px"``).

    Raises:
        LimitError: not a positive integer, or above ``limit``.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # int and numpy integers have it
        raise LimitError(f"{name} must be a positive integer, got {value!r}")
    number = int(value)  # numpy integers too
    if number < 1:
        raise LimitError(f"{name} must be a positive integer, got {number}")
    if number > limit:
        raise LimitError(f"{name} {number}{unit} is above the limit of {limit}{unit} (see README.md, Limits)")
    return number


def check_imgsz(
    imgsz: int | Sequence[int], stride: int | None = None, *, round_up: bool = False, name: str = "imgsz"
) -> tuple[int, int]:
    """The one rule for a network input size: ``(height, width)`` from one side or two.

    Every side is a positive integer up to ``MAX_IMGSZ``. With ``stride``, each side must be a
    multiple of it (training, export, FLOP counts), or, with ``round_up``, is rounded up to one
    with a warning (prediction, where any size a user types should work).

    Raises:
        LimitError: not one or two positive integers within the limit, or not a multiple of ``stride``.
    """
    sides = tuple(imgsz) if isinstance(imgsz, (tuple, list)) else (imgsz, imgsz)
    if len(sides) != 2:
        raise LimitError(f"{name} must be one side or (height, width), got {imgsz!r}")
    size = (check_size(name, sides[0], MAX_IMGSZ, " px"), check_size(name, sides[1], MAX_IMGSZ, " px"))
    if stride and (size[0] % stride or size[1] % stride):
        rounded = (-(-size[0] // stride) * stride, -(-size[1] // stride) * stride)
        if not round_up:
            shown = size[0] if size[0] == size[1] else size
            raise LimitError(f"{name} {shown} is not a multiple of {stride} (sides must be multiples of the "
                             f"largest model stride); use {rounded[0] if rounded[0] == rounded[1] else rounded}")
        log.warning("%s %s is not a multiple of the stride %d; using %s", name, size, stride, rounded)
        size = rounded
    return size
