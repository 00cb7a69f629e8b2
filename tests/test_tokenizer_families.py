"""RoBERTa (byte-level BPE), XLM-RoBERTa (SentencePiece) and MPNet (WordPiece with <s></s>):
in-graph tokenizers against Hugging Face's fast tokenizers on real vocabularies, and the
whole flow (export with verification, server, clients) on tiny random checkpoints."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from export import ExportOptions, export_model, read_report
from export._errors import ExportError, VerificationError
from export._tokenizer_parity import CORPUS
from tests._checkpoints import make_family_checkpoint

FAMILIES = ("roberta", "xlm-roberta", "mpnet")
HARD = ["a  b", "a\n\nb", "don't  's 'S", "trailing   ", " leading", "aaaaaaaaaa!!!!!!!", "3.14159 1234567",
        "a\u3000b\u00a0c", "tab\tx\r\ny", "日本語のテキスト", "🇫🇷🇫🇷 👩‍👩‍👧", "Ünïcödé façade"]
TEXTS = [text for kind, text in CORPUS if kind != "special-tokens"] + HARD
PAIRS = [("hello world", "the quick brown fox jumps over the lazy dog"), ("", "server"),
         ("one two three four five six seven eight nine ten", "a"), ("test " * 30, "batch " * 40)]


def _hf(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, gpt2_ranks):
    root = tmp_path_factory.mktemp("families")
    return {family: make_family_checkpoint(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    results = {family: export_model(ExportOptions(model=path, task="feature-extraction", name=family,
                                                  output_dir=out), log=lambda *_: None)
               for family, path in checkpoints.items()}
    return out, results


def _in_graph(checkpoint, max_length=62):
    from export._source import Checkpoint

    return Checkpoint.open(checkpoint).build_tokenizer(max_length)


def _byte_offsets(text, spans):
    at = [len(text[:i].encode()) for i in range(len(text) + 1)]
    return [(at[a], at[b]) for a, b in spans]


@pytest.mark.parametrize("family", FAMILIES)
def test_ids_match_hugging_face_on_every_text_but_special_token_strings(checkpoints, family):
    tok, hf = _in_graph(checkpoints[family]), _hf(checkpoints[family])
    ids, starts, ends = tok.tokenize_with_offsets(tf.constant(TEXTS))
    for text, row, row_starts, row_ends in zip(TEXTS, ids.to_list(), starts.to_list(), ends.to_list()):
        want = hf(text, add_special_tokens=False, return_offsets_mapping=True)
        assert row == want["input_ids"], text
        assert list(zip(row_starts, row_ends)) == _byte_offsets(text, want["offset_mapping"]), text


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_use_the_roberta_template_and_truncate_as_hugging_face(checkpoints, family):
    tok, hf = _in_graph(checkpoints[family]), _hf(checkpoints[family])
    first, second = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    for max_length in (7, 20, 62):
        got = tok.pack([tok.tokenize(tf.constant(first)), tok.tokenize(tf.constant(second))], max_length=max_length)
        want = hf(first, second, truncation="longest_first", max_length=max_length, padding=True, return_tensors="np")
        assert sorted(k for k in got if k != "segment_ids") == sorted(want)  # no token_type_ids
        for key in want:
            assert got[key].numpy().tolist() == want[key].tolist(), (max_length, key)
    assert got["input_ids"][0, :1].numpy().tolist() == [hf.cls_token_id]
    assert hf.sep_token_id == tok.sep_id and tok.pad_id == hf.pad_token_id


def test_byte_pair_has_no_state_that_grows_with_traffic(checkpoints):
    tok = _in_graph(checkpoints["roberta"])
    tok(tf.constant(TEXTS))
    assert not any("Mutable" in type(r).__name__ for r in tok._flatten())  # static tables only
    assert tok.variables == ()


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_exports_with_numeric_and_tokenizer_parity(exported, family):
    out, results = exported
    card = read_report(out / family / "1")
    assert card["parity"]["ok"] and not card["ops"]["missing"]
    # only texts with special-token strings (<s> </s> <mask>, MPNet's [UNK]) differ, and they are reported
    assert set(card["tokenizer_parity"]["mismatch_kinds"]) == {"special-tokens"}
    assert "token_type_ids" not in card["signatures"]["tokens"]["inputs"]
    assert set(results[family].signatures) >= {"text", "tokens", "tokens_int64", "embeds", "serving_default"}


def test_families_answer_over_rest_and_grpc_as_in_process(exported, tmp_path):
    from clients import GrpcClient, RestClient
    from server import ServerProcess
    from tests._clients_servers import model_config

    out, _ = exported
    config = model_config({f: out / f for f in FAMILIES}, tmp_path / "models.config")
    texts = ["Hello world!", "Ünïcödé, 日本語 and emoji 🔥", ""]
    with ServerProcess([f"--model_config_file={config}"], models=list(FAMILIES), timeout=300) as server, \
            RestClient(server.rest_url) as rest, GrpcClient(server.grpc_target) as grpc_:
        for family in FAMILIES:
            fn = tf.saved_model.load(str(out / family / "1")).signatures["text"]
            expected = fn(text=tf.constant(texts))["embedding"].numpy()
            for client in (rest, grpc_):
                got = client.predict(family, {"text": texts}, signature_name="text")["embedding"]
                np.testing.assert_allclose(got, expected, atol=1e-6)


def test_roberta_classifier_exports_with_its_pair_signature(gpt2_ranks, tmp_path):
    checkpoint = make_family_checkpoint(tmp_path / "ckpt", "roberta", task="text-classification")
    result = export_model(ExportOptions(model=checkpoint, task="text-classification", name="nli",
                                        output_dir=tmp_path / "models", warmup=False), log=lambda *_: None)
    assert result.report["parity"]["ok"] and "text_pair" in result.signatures


# -- bad input: fails before anything is written ------------------------------------------

def _export_fails(checkpoint, out) -> str:
    with pytest.raises(ExportError) as failure:
        export_model(ExportOptions(model=checkpoint, name="m", output_dir=out), log=lambda *_: None)
    assert not out.exists()
    return str(failure.value)


def test_bpe_vocabulary_without_merges_is_refused_before_writing(checkpoints, tmp_path):
    broken = shutil.copytree(checkpoints["roberta"], tmp_path / "ckpt")
    (broken / "merges.txt").unlink()
    assert "no tokenizer files (merges.txt): the BPE merges that belong with vocab.json" in _export_fails(
        broken, tmp_path / "out")


def test_merges_of_another_vocabulary_are_refused_before_writing(checkpoints, tmp_path):
    broken = shutil.copytree(checkpoints["roberta"], tmp_path / "ckpt")
    (broken / "merges.txt").write_text("#version: 0.2\nq z\n", encoding="utf-8")
    assert "the two files do not belong together" in _export_fails(broken, tmp_path / "out")


def test_sentencepiece_model_of_another_size_is_refused_before_writing(checkpoints, tmp_path):
    broken = shutil.copytree(checkpoints["xlm-roberta"], tmp_path / "ckpt")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 5}))
    message = _export_fails(broken, tmp_path / "out")
    assert "the SentencePiece model does not belong to this checkpoint" in message


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=VerificationError,
                   reason="PyTorch vs TF agree (2.9e-7 on the pooled embedding) but the reloaded SavedModel, "
                          "run as TF Serving runs it, differs from the in-memory TF MPNet by 2.3e-4; "
                          "the export refuses it until that is found")
def test_real_all_mpnet_base_v2_matches_sentence_transformers_pooling(mpnet_checkpoint, tmp_path):
    result = export_model(ExportOptions(model=mpnet_checkpoint, task="feature-extraction", name="mpnet",
                                        output_dir=tmp_path, warmup=False), log=lambda *_: None)
    card = result.report
    rows = {r["name"]: r for r in card["parity"]["pytorch_vs_tf"]}
    # mean pooling + L2 normalisation in torch (sentence-transformers' formulas) vs the export
    assert rows["embedding"]["max_abs_error"] <= 1e-5 and card["parity"]["ok"]
    assert card["task"]["pooling"] == "mean" and card["task"]["normalize"] is True
    assert set(card["tokenizer_parity"]["mismatch_kinds"]) == {"special-tokens"}
