"""Op check: every op of a SavedModel against what the target tensorflow/serving links."""
from __future__ import annotations

import pytest

from export import ExportError, ExportOptions, VerificationError, check_ops, collect_ops, export_model
from export._cli import main as export_main
from export._opcheck import SERVING_TF_TEXT, TF_TEXT_OPS_SINCE, default_target, op_sets
from tests._verify_helpers import save_function_model


@pytest.fixture(scope="module")
def round_robin_model(tmp_path_factory):
    """A SavedModel using TFText>RoundRobinTrim, a tf-text op first linked by serving 2.20.0."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    def trim(text):
        words = tf.strings.split(text)
        first, second = tf_text.RoundRobinTrimmer(max_seq_length=4).trim([words, words])
        return {"first": first.to_tensor(), "second": second.to_tensor()}

    return save_function_model(tmp_path_factory.mktemp("ops") / "round_robin", trim)


@pytest.fixture(scope="module")
def classic_tokenizer_model(tmp_path_factory, tiny_checkpoint):
    """Just the classic in-graph tokenizer (BertTokenizer ops), saved as a SavedModel."""
    from signatures import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(str(tiny_checkpoint / "vocab.txt"), kind="classic", max_length=16)
    path = tmp_path_factory.mktemp("ops") / "classic"
    import tensorflow as tf

    module = tf.Module()
    module.tokenizer = tokenizer
    module.serve = tf.function(lambda text: tokenizer(text), input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_default_target_is_the_installed_tensorflow_version():
    from importlib.metadata import version

    assert default_target() == version("tensorflow")


def test_tf_text_ops_are_not_counted_as_core_ops():
    sets = op_sets()
    assert "FastWordpieceTokenizeWithOffsets" in sets.tf_text and "MatMul" in sets.core
    assert not sets.core & sets.tf_text


def test_ops_are_collected_from_the_function_library(tiny_model_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((tiny_model_dir / "1" / "saved_model.pb").read_bytes())
    top_level = {node.op for node in saved.meta_graphs[0].graph_def.node}
    ops = collect_ops(tiny_model_dir / "1")
    assert "FastWordpieceTokenizeWithOffsets" in ops and "FastWordpieceTokenizeWithOffsets" not in top_level
    assert "MatMul" in ops or "BatchMatMulV2" in ops


def test_tiny_export_passes_for_the_default_target(tiny_model_dir):
    result = check_ops(tiny_model_dir / "1")
    assert result.ok, result.error()
    assert "FastWordpieceTokenizeWithOffsets" in result.tf_text_ops


def test_tf_text_op_newer_than_the_target_fails(round_robin_model):
    result = check_ops(round_robin_model, "2.19.0")
    assert set(result.missing) == {"TFText>RoundRobinTrim"}
    assert "linked from serving 2.20.0" in result.missing["TFText>RoundRobinTrim"]
    assert "--target-serving 2.20.0 or later" in result.fixes


def test_same_tf_text_op_passes_for_serving_2_20(round_robin_model):
    assert check_ops(round_robin_model, "2.20.0").ok


def test_fast_tokenizer_fails_before_serving_2_10_and_suggests_classic(tiny_model_dir):
    assert check_ops(tiny_model_dir / "1", "2.10.0", tokenizer="fast").ok
    result = check_ops(tiny_model_dir / "1", "2.9.0", tokenizer="fast")
    assert set(result.missing) == {"FastWordpieceTokenizeWithOffsets"}
    assert any(fix.startswith("--tokenizer classic") for fix in result.fixes)
    assert "--target-serving 2.10.0 or later" in result.fixes


def test_every_missing_op_is_named(tmp_path):
    import tensorflow as tf
    import tensorflow_text as tf_text

    pieces = tf_text.FastWordpieceTokenizer(vocab=["[UNK]", "a", "b"], token_out_type=tf.int64)

    def two_new_ops(text):
        ids = pieces.tokenize(text)
        first, second = tf_text.RoundRobinTrimmer(max_seq_length=4).trim([ids, ids])
        return {"first": first.to_tensor(), "second": second.to_tensor()}

    result = check_ops(save_function_model(tmp_path / "two", two_new_ops), "2.9.0")
    assert set(result.missing) == {"TFText>RoundRobinTrim", "FastWordpieceTokenizeWithOffsets"}
    assert "TFText>RoundRobinTrim" in result.error() and "FastWordpieceTokenizeWithOffsets" in result.error()


def test_classic_tokenizer_passes_for_serving_2_2(classic_tokenizer_model):
    result = check_ops(classic_tokenizer_model, "2.2.0")
    assert result.ok, result.error()
    assert {"WordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} <= set(result.tf_text_ops)


def test_python_only_op_fails_for_every_target(tmp_path):
    import tensorflow as tf

    path = save_function_model(tmp_path / "py", lambda text: {"n": tf.py_function(lambda t: t, [text], tf.string)})
    result = check_ops(path, default_target())
    assert "EagerPyFunc" in result.missing and "Python-only" in result.missing["EagerPyFunc"]


def test_older_targets_note_that_the_installed_core_op_set_stands_in(tiny_model_dir):
    notes = " ".join(check_ops(tiny_model_dir / "1", "2.15.0").notes)
    assert f"installed tensorflow {default_target()}'s op set stands for serving 2.15.0" in notes
    assert "tf-text 2.12.1" in notes


def test_facts_table_matches_the_issue():
    assert SERVING_TF_TEXT == [("2.12.0", "2.19", "2.12.1"), ("2.20.0", "2.20", "2.20.0")]
    assert {op for op, (since, _) in TF_TEXT_OPS_SINCE.items() if since == "2.20.0"} == {
        "TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks", "TFText>Utf8Binarize"}


# -- python -m export check -------------------------------------------------------------

def test_check_command_names_every_missing_op_and_exits_1(capsys, round_robin_model):
    code = export_main(["check", str(round_robin_model), "--target-serving", "2.12.0"])
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "TFText>RoundRobinTrim" in err and "--target-serving 2.20.0" in err


def test_check_command_passes_a_good_model(capsys, tiny_model_dir):
    assert export_main(["check", str(tiny_model_dir / "1")]) == 0
    assert f"all linked by tensorflow/serving {default_target()}" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["2.1.0", "banana", "2.21.0"])
def test_unknown_target_is_a_one_line_error_naming_the_flag(capsys, tiny_model_dir, target):
    code = export_main(["check", str(tiny_model_dir / "1"), "--target-serving", target])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: --target-serving {target}:")


def test_check_command_names_a_path_without_a_saved_model(capsys, tiny_model_dir):
    code = export_main(["check", str(tiny_model_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: check PATH {tiny_model_dir}: no saved_model.pb")


# -- in the export ----------------------------------------------------------------------

def test_export_for_a_target_lacking_an_op_fails_and_leaves_nothing(tiny_checkpoint, tmp_path):
    with pytest.raises(VerificationError) as failure:
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, target_serving="2.9.0",
                                   verify=False, warmup=False), log=lambda *_: None)
    message = str(failure.value)
    assert "FastWordpieceTokenizeWithOffsets" in message and "--tokenizer classic" in message
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_refuses_an_unknown_target_before_loading(tiny_checkpoint, tmp_path, monkeypatch):
    import export._exporter as exporter

    monkeypatch.setattr(exporter, "load_tf_model", lambda *a: pytest.fail("loaded the model"))
    with pytest.raises(ExportError, match=r"--target-serving banana"):
        export_model(ExportOptions(model=tiny_checkpoint, name="m", output_dir=tmp_path, target_serving="banana"),
                     log=lambda *_: None)
