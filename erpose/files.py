"""File writing shared by every layer: atomic writes and run-directory numbering.

Atomic: temporary file next to the target, fsync, ``os.replace``, so a crash never leaves a torn
file. No torch here: the torch-free runtime and the data layer use it too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any


def target_error(exc: OSError, path: str | Path) -> OSError:
    """``exc`` re-made to name ``path``: a failure on a temporary file is a failure to write ``path``."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def check_output_file(path: str | Path) -> Path:
    """Fail before any work when ``path`` cannot be a file: an existing folder, or under a file.

    Raises:
        IsADirectoryError, NotADirectoryError: naming ``path`` (the CLI prints ``path: reason``).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file, not a folder", str(path))
            break
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (parents are created).

    Raises:
        OSError: naming ``path`` (not the temporary file) when it cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise target_error(exc, path) from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(data: Any, path: str | Path, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent))


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        _remove(tmp)
        raise exc if exc.filename == str(src) else target_error(exc, dst) from None


def increment_run_dir(project: str | Path, name: str, exist_ok: bool = False) -> Path:
    """``project/name``, or the first free ``project/name2``, ``name3``... unless ``exist_ok``."""
    base = Path(project) / name
    if exist_ok or not base.exists():
        return base
    stem = re.sub(r"\d+$", "", name) or name
    n = 2
    while (Path(project) / f"{stem}{n}").exists():
        n += 1
    return Path(project) / f"{stem}{n}"
