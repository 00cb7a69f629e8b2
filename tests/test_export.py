"""Export: tiny random checkpoints -> SavedModels with every signature working."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export import ExportOptions, export_model, read_signatures
from export._cli import main as export_main
from tests._references import hf_tokenizer, sentence_embeddings
from tests._signature_checks import call, check_signature

TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "a", "",
         "Testing, testing: one two three!", "model serving is fast"]


def test_export_writes_version_1_with_every_signature(tiny_model_dir):
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == ["1"]
    signatures = read_signatures(tiny_model_dir / "1")
    assert set(signatures) == {"serving_default", "text", "tokens", "tokens_int64", "embeds", "token_count"}
    assert signatures["serving_default"] == signatures["text"]
    assert signatures["text"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert signatures["text"]["outputs"] == {"embedding": {"dtype": "float", "shape": [-1, 32]}}
    assert set(signatures["tokens"]["inputs"]) == {"input_ids", "attention_mask", "token_type_ids"}
    assert signatures["tokens_int64"]["inputs"]["input_ids"]["dtype"] == "int64"
    assert signatures["embeds"]["inputs"]["inputs_embeds"] == {"dtype": "float", "shape": [-1, -1, 32]}


def test_text_signature_is_batch_consistent(tiny_model_dir):
    out = check_signature(tiny_model_dir / "1", "text", {"text": TEXTS})
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=1), 1.0, rtol=1e-5)


def test_text_and_tokens_signatures_agree(tiny_model_dir, tiny_checkpoint):
    encoded = hf_tokenizer(tiny_checkpoint)(TEXTS, padding=True, return_tensors="np")
    tokens = check_signature(tiny_model_dir / "1", "tokens", dict(encoded))
    text = call(tiny_model_dir / "1", "text", {"text": TEXTS})
    np.testing.assert_allclose(tokens["embedding"], text["embedding"], atol=1e-6)


def test_tokens_int64_equals_tokens(tiny_model_dir, tiny_checkpoint):
    encoded = dict(hf_tokenizer(tiny_checkpoint)(TEXTS, padding=True, return_tensors="np"))
    int32 = call(tiny_model_dir / "1", "tokens", encoded)
    int64 = check_signature(tiny_model_dir / "1", "tokens_int64", {k: v.astype(np.int64) for k, v in encoded.items()})
    for key in int32:
        np.testing.assert_array_equal(int32[key], int64[key])


def test_embeds_signature_equals_tokens_given_word_embeddings(tiny_model_dir, tiny_checkpoint):
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_checkpoint / "model.safetensors"))
    table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    encoded = dict(hf_tokenizer(tiny_checkpoint)(TEXTS, padding=True, return_tensors="np"))
    embeds = check_signature(tiny_model_dir / "1", "embeds", {
        "inputs_embeds": table[encoded["input_ids"]].astype(np.float32),
        "attention_mask": encoded["attention_mask"], "token_type_ids": encoded["token_type_ids"]})
    tokens = call(tiny_model_dir / "1", "tokens", encoded)
    np.testing.assert_allclose(embeds["embedding"], tokens["embedding"], atol=1e-5)


def test_text_signature_matches_pytorch_reference(tiny_model_dir, tiny_checkpoint):
    expected, _ = sentence_embeddings(tiny_checkpoint, TEXTS)
    got = call(tiny_model_dir / "1", "text", {"text": TEXTS})["embedding"]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_second_export_takes_the_next_version(tiny_checkpoint, tmp_path):
    for _ in range(2):  # versioning is the subject: the checks and the warmup file are left out
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, verify=False, warmup=False),
                     log=lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"


def test_max_length_truncates_like_the_hf_tokenizer(tiny_checkpoint, tmp_path):
    export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, max_length=8, verify=False,
                               warmup=False), log=lambda *_: None)
    long_texts = ["one two three four five six seven eight nine ten", "hello"]
    encoded = dict(hf_tokenizer(tiny_checkpoint)(long_texts, padding=True, truncation=True, max_length=8,
                                                 return_tensors="np"))
    assert encoded["input_ids"].shape == (2, 8)
    np.testing.assert_allclose(call(tmp_path / "m" / "1", "text", {"text": long_texts})["embedding"],
                               call(tmp_path / "m" / "1", "tokens", encoded)["embedding"], atol=1e-6)


def test_classic_tokenizer_gives_the_same_embeddings(tiny_checkpoint, tiny_model_dir, tmp_path):
    export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, tokenizer="classic",
                               verify=False, warmup=False), log=lambda *_: None)
    np.testing.assert_allclose(call(tmp_path / "m" / "1", "text", {"text": TEXTS})["embedding"],
                               call(tiny_model_dir / "1", "text", {"text": TEXTS})["embedding"], atol=1e-6)


def test_tf_weights_export_like_pytorch_weights(tiny_tf_checkpoint, tiny_tf_dir):
    assert (tiny_tf_checkpoint / "tf_model.h5").is_file()
    assert call(tiny_tf_dir / "1", "text", {"text": TEXTS})["embedding"].shape == (len(TEXTS), 32)


def test_hidden_states_and_attentions_are_stacked_batch_major(tiny_extras_dir):
    out = call(tiny_extras_dir / "1", "text", {"text": ["hello world", "a"]})
    assert out["hidden_states"].shape == (2, 3, 4, 32)  # layers + 1, [CLS] hello world [SEP]
    assert out["attentions"].shape == (2, 2, 2, 4, 4)  # layers, heads
    tokens = read_signatures(tiny_extras_dir / "1")["tokens"]["outputs"]
    assert {"hidden_states", "attentions", "last_hidden_state", "embedding"} <= set(tokens)


# -- text classification ---------------------------------------------------------------

def test_classifier_outputs_labels_and_probabilities(tiny_classifier_dir, tiny_classifier_checkpoint):
    import torch
    from transformers import BertForSequenceClassification

    out = check_signature(tiny_classifier_dir / "1", "text", {"text": TEXTS})
    assert set(out) == {"logits", "probabilities", "label", "score"}
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
    best = out["probabilities"].argmax(axis=1)
    assert [s.decode() for s in out["label"]] == [("negative", "positive")[i] for i in best]
    np.testing.assert_allclose(out["score"], out["probabilities"].max(axis=1))
    encoded = hf_tokenizer(tiny_classifier_checkpoint)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = BertForSequenceClassification.from_pretrained(tiny_classifier_checkpoint).eval()(**encoded).logits
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-5)


def test_classifier_text_pair_signature_matches_hf_pair_encoding(tiny_classifier_dir, tiny_classifier_checkpoint):
    first = ["hello world", "the quick brown fox jumps over the lazy dog " * 4, "a"]
    second = ["good movie", "bad", "one two three four five six seven eight nine ten " * 5]
    encoded = dict(hf_tokenizer(tiny_classifier_checkpoint)(first, second, padding=True, truncation="longest_first",
                                                            max_length=64, return_tensors="np"))
    pair = check_signature(tiny_classifier_dir / "1", "text_pair", {"text": first, "text_pair": second})
    np.testing.assert_allclose(pair["logits"], call(tiny_classifier_dir / "1", "tokens", encoded)["logits"], atol=1e-6)


def test_default_signature_tokens_serves_transformers_style_inputs(tiny_classifier_tokens_dir):
    default = read_signatures(tiny_classifier_tokens_dir / "1")["serving_default"]
    assert set(default["inputs"]) == {"input_ids", "attention_mask", "token_type_ids"}
    assert "logits" in default["outputs"]


# -- bad input: one line, exit 2, nothing half-written ------------------------------------

def _run_cli(capsys, *args) -> tuple[int, str]:
    code = export_main(list(args))
    return code, capsys.readouterr().err.strip()


def test_missing_model_path_is_named(capsys, tmp_path):
    code, err = _run_cli(capsys, "--model", str(tmp_path / "nope"), "--name", "m", "--output-dir", str(tmp_path))
    assert code == 2 and err == f"error: --model {tmp_path / 'nope'}: no such file or directory"


def test_checkpoint_without_tokenizer_files_is_refused(capsys, tmp_path, tiny_checkpoint):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_checkpoint, bare)
    (bare / "vocab.txt").unlink()
    code, err = _run_cli(capsys, "--model", str(bare), "--name", "m", "--output-dir", str(tmp_path / "out"))
    assert code == 2 and "no tokenizer files (vocab.txt)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "m").exists()


def test_unsupported_architecture_says_why(capsys, tmp_path, tiny_checkpoint):
    import shutil

    other = tmp_path / "gpt2"
    shutil.copytree(tiny_checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    code, err = _run_cli(capsys, "--model", str(other), "--name", "m", "--output-dir", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1
    assert "unsupported architecture 'gpt2' (a decoder" in err
    assert err.endswith("supported: bert, distilbert, electra, mpnet, roberta, xlm-roberta")


def test_unsupported_task_names_the_flag(tmp_path, tiny_checkpoint):
    proc = subprocess.run([sys.executable, "-m", "export", "--model", str(tiny_checkpoint), "--name", "m",
                           "--task", "translation", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "argument --task: invalid choice: 'translation'" in proc.stderr


def test_existing_version_is_refused_and_kept(capsys, tiny_model_dir, tiny_checkpoint):
    before = sorted(p.name for p in (tiny_model_dir / "1").iterdir())
    code, err = _run_cli(capsys, "--model", str(tiny_checkpoint), "--name", "tiny",
                         "--output-dir", str(tiny_model_dir.parent), "--version", "1")
    assert code == 2 and "tiny/1 already exists" in err
    assert sorted(p.name for p in (tiny_model_dir / "1").iterdir()) == before


def test_unwritable_output_dir_is_named(capsys, tmp_path, tiny_checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, err = _run_cli(capsys, "--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(blocker / "models"))
    assert code == 2 and err.startswith(f"error: --output-dir {blocker / 'models'}: not writable")


def test_failed_export_leaves_no_version_directory(tmp_path, tiny_checkpoint, monkeypatch):
    """A crash while saving must not leave models/NAME/VERSION half-written."""
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path), log=lambda *_: None)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
