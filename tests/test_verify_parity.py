"""Numeric and tokenizer parity: run by every export, failing it when the artifact is wrong."""
from __future__ import annotations

import pytest

from export import CORPUS, ExportOptions, VerificationError, export_model, read_report, tokenizer_parity
from export._cli import main as export_main
from tests._references import hf_tokenizer
from tests._verify_helpers import perturb_encoder_layer


def _rows(group: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in group}


# -- numeric parity ---------------------------------------------------------------------

def test_every_export_records_pytorch_vs_tf_per_layer_and_per_output(tiny_model_dir):
    parity = read_report(tiny_model_dir / "1")["parity"]
    rows = _rows(parity["pytorch_vs_tf"])
    assert [n for n in rows if n.startswith("hidden_states")] == ["hidden_states[0]", "hidden_states[1]",
                                                                  "hidden_states[2]"]
    assert rows["hidden_states[2]"]["where"] == "encoder layer 2"
    assert {"last_hidden_state", "embedding"} <= set(rows)
    assert parity["ok"] and all(r["max_abs_error"] <= 1e-5 for r in rows.values())


def test_every_signature_of_the_saved_model_is_compared(tiny_model_dir):
    rows = _rows(read_report(tiny_model_dir / "1")["parity"]["saved_model_vs_tf"])
    assert {name.split(":")[0] for name in rows} == {"serving_default", "text", "tokens", "tokens_int64", "embeds",
                                                      "token_count"}
    assert all(r["ok"] for r in rows.values())


def test_classifier_parity_covers_logits_probabilities_label_and_score(tiny_classifier_dir):
    parity = read_report(tiny_classifier_dir / "1")["parity"]
    rows = _rows(parity["pytorch_vs_tf"])
    assert {"logits", "probabilities", "score"} <= set(rows) and rows["label"]["differing_rows"] == 0
    assert "text_pair: logits" in _rows(parity["saved_model_vs_tf"])


def test_perturbed_encoder_layer_fails_parity_naming_that_layer(tiny_checkpoint, tmp_path, monkeypatch):
    perturb_encoder_layer(monkeypatch, index=1)  # encoder.layer.1: its output is hidden_states[2]
    with pytest.raises(VerificationError) as failure:
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path), log=lambda *_: None)
    assert "first mismatch at hidden_states[2] (encoder layer 2)" in str(failure.value)
    assert not (tmp_path / "m").exists(), "a failed check left models/NAME behind"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"


def test_failed_parity_prints_the_figures_and_exits_1(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--max-error", "1e-12", "--no-warmup"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "hidden_states[0] (embeddings)" in out and "FAIL" in out  # the table, with figures
    assert len(err.strip().splitlines()) == 1 and "numeric parity failed" in err and "1e-12" in err
    assert not (tmp_path / "m").exists()


def test_failed_check_keeps_the_versions_already_there(tiny_model_dir, tiny_checkpoint, tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    with pytest.raises(VerificationError):
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, max_error=1e-12,
                                   warmup=False), log=lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]


def test_tf_weights_have_no_pytorch_reference_and_say_so(tiny_tf_dir):
    parity = read_report(tiny_tf_dir / "1")["parity"]
    assert parity["pytorch_vs_tf"] is None and "TF weights" in parity["pytorch_note"]
    assert parity["ok"] and parity["saved_model_vs_tf"]


def test_non_positive_max_error_is_refused(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--max-error", "0"])
    assert code == 2 and capsys.readouterr().err.startswith("error: --max-error 0.0: must be a positive number")


# -- tokenizer parity -------------------------------------------------------------------

def _in_graph(checkpoint, max_length=64):
    from signatures import WordPieceTokenizer

    return WordPieceTokenizer(str(checkpoint / "vocab.txt"), max_length=max_length)


def test_builtin_corpus_covers_the_hard_cases():
    kinds = {kind for kind, _ in CORPUS}
    assert {"english", "punctuation", "accents", "cjk", "emoji", "long", "empty", "special-tokens"} <= kinds
    assert any("[CLS]" in text for _, text in CORPUS) and "" in [text for _, text in CORPUS]
    assert max(len(text) for _, text in CORPUS) > 5000


def test_special_token_strings_are_reported_side_by_side(tiny_model_dir):
    tokens = read_report(tiny_model_dir / "1")["tokenizer_parity"]
    assert tokens["texts"] == len(CORPUS) and tokens["mismatch_kinds"] == {"special-tokens": 2}
    example = next(e for e in tokens["examples"] if e["text"].startswith("[CLS]"))
    assert example["reference"][:2] == ["[CLS]", "[CLS]"]
    assert example["in_graph"][:5] == ["[CLS]", "[", "c", "##l", "##s"]


def test_parity_corpus_texts_are_counted_and_compared(tiny_checkpoint):
    report = tokenizer_parity(_in_graph(tiny_checkpoint), hf_tokenizer(tiny_checkpoint), max_length=64,
                              extra=["hello world", "see [SEP] here"])
    assert report.texts == len(CORPUS) + 2 and report.sources == {"built-in": len(CORPUS), "file": 2}
    assert report.mismatch_kinds.get("file") == 1


def test_a_tokenizer_that_disagrees_is_counted(tiny_checkpoint):
    report = tokenizer_parity(_in_graph(tiny_checkpoint, max_length=8), hf_tokenizer(tiny_checkpoint), max_length=64)
    assert report.mismatches > len(CORPUS) // 2  # truncating at 8 tokens instead of 64


def test_strict_tokenizer_makes_differences_fatal(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--strict-tokenizer", "--no-warmup"])
    out, err = capsys.readouterr()
    assert code == 1 and "tokenizer parity failed (--strict-tokenizer): 2 of" in err
    assert "reference: [CLS] [CLS]" in out  # shown side by side before failing
    assert not (tmp_path / "m").exists()


def test_missing_parity_corpus_file_is_named(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--parity-corpus", str(tmp_path / "nope.txt")])
    assert code == 2 and capsys.readouterr().err.strip() == f"error: --parity-corpus {tmp_path / 'nope.txt'}: no such file"


def test_strict_tokenizer_with_no_verify_is_refused(tiny_checkpoint, tmp_path, capsys):
    code = export_main(["--model", str(tiny_checkpoint), "--name", "m", "--output-dir", str(tmp_path),
                        "--strict-tokenizer", "--no-verify"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --strict-tokenizer needs the parity checks")


# -- no verification --------------------------------------------------------------------

def test_no_verify_skips_parity_but_still_checks_ops(tiny_bare_dir):
    card = read_report(tiny_bare_dir / "1")
    assert card["parity"] is None and card["tokenizer_parity"] is None
    assert card["ops"]["missing"] == {} and "parity" not in card["timings"]


# -- the real model ---------------------------------------------------------------------

@pytest.mark.slow
def test_minilm_passes_parity_within_1e_5_at_every_layer(minilm_model_dir):
    parity = read_report(minilm_model_dir / "1")["parity"]
    rows = _rows(parity["pytorch_vs_tf"])
    assert len([n for n in rows if n.startswith("hidden_states")]) == 7  # embeddings + 6 layers
    assert parity["ok"] and max(r["max_abs_error"] for r in rows.values()) <= 1e-5


@pytest.mark.slow
def test_minilm_tokenizer_differences_are_reported_not_hidden(minilm_model_dir):
    tokens = read_report(minilm_model_dir / "1")["tokenizer_parity"]
    assert tokens["mismatch_kinds"].get("special-tokens") == 2
    assert tokens["mismatches"] == sum(tokens["mismatch_kinds"].values())
