"""Upper bounds on the sizes a user can ask for, so a typo is a one-line error, not an OOM kill.

``erpose predict --imgsz 100000`` would letterbox every image onto a 100000 x 100000 canvas
(about 22 GB before the model runs) and be killed by the operating system. Every size argument is
checked against these limits where it enters the library (``Predictor``, ``validate``,
``TrainConfig``, ``OnnxExportConfig``) and every image file is checked before it is decoded
(``erpose.images``). The limits are far above any sensible use; README.md ("Limits") lists them.
No torch here: the torch-free runtime uses it too.
"""

from __future__ import annotations

#: Network input side, pixels (8192 x 8192: about 0.8 GB of float32 input per image).
MAX_IMGSZ = 8192
#: Images per forward pass or training step.
MAX_BATCH = 1024
#: Persons kept per image (a 640 px input has 8400 anchor points; COCO scores the best 20).
MAX_DET = 10_000
#: Pixels of one image file (width x height), checked from its header before decoding:
#: 100 megapixels is about 300 MB as a BGR array.
MAX_IMAGE_PIXELS = 100_000_000


class LimitError(ValueError):
    """A size above its limit in ``erpose.limits`` (or not a positive integer)."""


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


def check_imgsz(imgsz: int | tuple[int, ...] | list[int], name: str = "imgsz") -> None:
    """Check an input size: one side or (height, width), each in 1..``MAX_IMGSZ``."""
    sides = imgsz if isinstance(imgsz, (tuple, list)) else (imgsz,)
    for side in sides:
        check_size(name, side, MAX_IMGSZ, " px")
