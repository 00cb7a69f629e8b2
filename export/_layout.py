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

__all__ = ["versions", "next_version", "version_dir", "staging", "publish"]


def _version_dirs(base: Path) -> dict[int, Path]:
    # TF Serving reads the number from the name (`00000123` is version 123) and
    # loads the directory it found, so the path is kept, never rebuilt.
    if not base.is_dir():
        return {}
    found: dict[int, Path] = {}
    for p in sorted(base.iterdir()):
        if p.is_dir() and p.name.isascii() and p.name.isdigit():
            found.setdefault(int(p.name), p)
    return found


def versions(base: Path) -> list[int]:
    """The numeric version directories under `base`, sorted (TF Serving ignores the rest)."""
    return sorted(_version_dirs(base))


def next_version(base: Path) -> int:
    existing = versions(base)
    return existing[-1] + 1 if existing else 1


def version_dir(base: Path, version: int) -> Path:
    """Where `version` lives under `base`: the directory already on disk for it,
    however its number is spelled (`00000123`), else `base/<version>`.

    >>> version_dir(Path("/nonexistent/m"), 3)
    PosixPath('/nonexistent/m/3')
    """
    return _version_dirs(base).get(version, base / str(version))


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
    existing = version_dir(target.parent, int(target.name))
    if existing != target:
        raise ExportError(f"version {int(target.name)} already exists as {existing}; pick another "
                          "--version or leave it out to take the next free one")
    try:
        os.rename(staged, target)
    except OSError as exc:
        if target.exists():
            raise ExportError(f"{target} already exists; pick another --version or leave it out "
                              "to take the next free one") from exc
        raise ExportError(f"cannot move the export into {target}: {exc.strerror or exc}") from exc
    return target
