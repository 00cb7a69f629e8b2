"""The model card (assets.extra/export_report.json) and `python -m export inspect`."""
from __future__ import annotations

from importlib.metadata import version

from export import read_report
from export._cli import main as export_main
from export._opcheck import default_target


def test_model_card_has_source_task_versions_and_target(tiny_model_dir, tiny_checkpoint):
    card = read_report(tiny_model_dir / "1")
    assert card["source"]["path"] == str(tiny_checkpoint.resolve()) and card["source"]["weights"] == "pytorch"
    assert card["task"] == {"task": "feature-extraction", "pooling": "mean", "normalize": True}
    assert card["versions"]["tensorflow"] == version("tensorflow")
    assert card["versions"]["tensorflow-text"] == version("tensorflow-text")
    assert card["versions"]["transformers"] == version("transformers")
    assert card["target_serving"] == default_target()


def test_model_card_lists_signatures_ops_sizes_and_timings(tiny_model_dir):
    card = read_report(tiny_model_dir / "1")
    assert card["signatures"]["text"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert "FastWordpieceTokenizeWithOffsets" in card["ops"]["ops"] and card["ops"]["missing"] == {}
    assert card["sizes"]["variables_bytes"] > 0 and card["sizes"]["total_bytes"] > card["sizes"]["variables_bytes"]
    timings = card["timings"]
    steps = ("parity", "tokenizer_parity", "bucket_parity", "op_check", "warmup")
    assert {"load", "save", *steps, "verification", "total"} <= set(timings)
    assert timings["verification"] == round(sum(timings[k] for k in steps), 3)


def test_classifier_card_has_the_label_map(tiny_classifier_dir):
    assert read_report(tiny_classifier_dir / "1")["labels"] == {"0": "negative", "1": "positive"}


def test_inspect_prints_the_card_with_signatures_as_a_table(tiny_model_dir, capsys):
    assert export_main(["inspect", str(tiny_model_dir / "1")]) == 0
    out = capsys.readouterr().out
    assert "signature" in out and "tokens_int64" in out and "int64" in out  # the table
    assert f"tensorflow/serving {default_target()}:" in out and "all linked" in out
    assert "hidden_states[2] (encoder layer 2)" in out  # the parity table
    assert "tokenizer parity: 2 of" in out


def test_inspect_without_a_card_still_shows_signatures(tiny_model_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "1"
    shutil.copytree(tiny_model_dir / "1", copy)
    (copy / "assets.extra" / "export_report.json").unlink()
    assert export_main(["inspect", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "not exported by python -m export" in out and "embeds" in out


def test_inspect_names_a_bad_path(tiny_model_dir, capsys):
    code = export_main(["inspect", str(tiny_model_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: inspect PATH {tiny_model_dir}: no saved_model.pb") and "did you mean" in err
