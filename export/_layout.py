"""The `models/NAME/VERSION/` layout TF Serving watches, written atomically.

A version directory appears complete or not at all: the SavedModel is written
to a staging directory beside `models/NAME/` and renamed into place.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from export._errors import ExportError

__all__ = ["versions", "next_version", "staging", "publish"]


def versions(base: Path) -> list[int]:
    """The numeric version directories under `base`, sorted (TF Serving ignores the rest)."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base: Path) -> int:
    existing = versions(base)
    return existing[-1] + 1 if existing else 1


@contextlib.contextmanager
def staging(output_dir: Path, name: str):
    """A fresh directory on the same filesystem as `output_dir`, removed on exit."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-export-", dir=output_dir))
    except OSError as exc:
        raise ExportError(f"--output-dir {output_dir}: not writable ({exc.strerror or exc})") from exc
    try:
        yield tmp / "model"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, target: Path) -> Path:
    """Move a finished SavedModel to `target` (a version directory) in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staged, target)
    except OSError as exc:
        if target.exists():
            raise ExportError(f"{target} already exists; pick another --version or leave it out "
                              "to take the next free one") from exc
        raise ExportError(f"cannot move the export into {target}: {exc.strerror or exc}") from exc
    return target
