"""File writing shared by every layer: atomic writes and run-directory numbering.

Atomic: temporary file next to the target, fsync, ``os.replace``, so a crash never leaves a torn
file. No torch here: the torch-free runtime and the data layer use it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(data: Any, path: str | Path, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent))


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)


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
