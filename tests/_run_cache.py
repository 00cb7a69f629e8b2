"""Checkpoints and exports made once per test run, shared by every module and both xdist workers.

`make test` runs two pytest-xdist workers, each with its own session, so a
session fixture alone builds its model twice. Here a build runs under a
file lock in the directory both workers share (the run's base temp dir,
fresh each run); whoever comes second waits and reuses it. A build is
keyed by everything it is made from, so two modules asking for the same
configuration share one export and different ones never collide.

>>> checkpoint = shared_checkpoint(tmp_path_factory, task="text-classification")
>>> base = shared_export(tmp_path_factory, checkpoint, "bert", "text-classification", default_signature="tokens")
>>> sorted(p.name for p in base.iterdir())
['1']

What is shared must be treated as read-only: a test that changes a model
copies it into its own `tmp_path` first.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

__all__ = ["export", "made_once", "shared_checkpoint", "shared_export", "shared_dir"]


def shared_dir(tmp_path_factory) -> Path:
    """A directory of this run that every xdist worker sees (a worker's base temp dir is inside the run's)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(exist_ok=True)
    return root


def made_once(tmp_path_factory, key: str, make: Callable[[Path], object]) -> Path:
    """`make(path)` once per run for `key`, under a lock; returns the path (built now or earlier)."""
    from filelock import FileLock

    root = shared_dir(tmp_path_factory)
    target, done = root / key, root / f"{key}.done"
    with FileLock(str(root / f"{key}.lock")):
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)  # what a failed build left
            make(target)
            done.touch()
    return target


def _key(name: str, *parts, **options) -> str:
    digest = hashlib.sha256(repr((parts, sorted(options.items()))).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def shared_checkpoint(tmp_path_factory, family: str = "bert", task: str = "feature-extraction", **kwargs) -> Path:
    """A tiny random checkpoint (tests/_checkpoints.py): `make_checkpoint` for "bert" (kwargs: weights,
    labels, seed), else `make_family_checkpoint` ("roberta", "xlm-roberta", "mpnet"; kwargs: labels, seed)."""
    from tests._checkpoints import make_checkpoint, make_family_checkpoint

    if family == "bert":
        make = lambda d: make_checkpoint(d, task=task, **kwargs)  # noqa: E731
    else:
        make = lambda d: make_family_checkpoint(d, family, task=task, **kwargs)  # noqa: E731
    return made_once(tmp_path_factory, _key(f"ckpt-{family}-{task}", **kwargs), make)


def export(checkpoint: Path, out: Path, name: str, task: str = "feature-extraction", **options) -> Path:
    """`export_model` of `checkpoint` into `out/name` (options: ExportOptions fields); returns `out/name`."""
    from export import ExportOptions, export_model

    export_model(ExportOptions(model=checkpoint, task=task, name=name, output_dir=out, **options), log=lambda *_: None)
    return out / name


def shared_export(tmp_path_factory, checkpoint: Path, name: str, task: str = "feature-extraction",
                  **options) -> Path:
    """The export of `checkpoint` with these options, made once per run; returns the base dir holding `1/`."""
    import tensorflow_text  # noqa: F401  (an export the other worker made was never built in this process:
    # loading it in-process needs the tokenizer ops registered, as the serving binary links them)

    key = _key(f"export-{name}", str(checkpoint), task, **options)
    return made_once(tmp_path_factory, key, lambda d: export(checkpoint, d, name, task, **options)) / name
