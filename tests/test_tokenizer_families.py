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
from export._errors import ExportError
from export._tokenizer_parity import CORPUS
from tests._checkpoints import make_family_checkpoint
from tests._references import byte_offsets, hf_tokenizer

FAMILIES = ("roberta", "xlm-roberta", "mpnet")
HARD = ["a  b", "a\n\nb", "don't  's 'S", "trailing   ", " leading", "aaaaaaaaaa!!!!!!!", "3.14159 1234567",
        "a\u3000b\u00a0c", "tab\tx\r\ny", "日本語のテキスト", "🇫🇷🇫🇷 👩‍👩‍👧", "Ünïcödé façade"]
TEXTS = [text for kind, text in CORPUS if kind != "special-tokens"] + HARD
PAIRS = [("hello world", "the quick brown fox jumps over the lazy dog"), ("", "server"),
         ("one two three four five six seven eight nine ten", "a"), ("test " * 30, "batch " * 40)]


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


@pytest.mark.parametrize("family", FAMILIES)
def test_ids_match_hugging_face_on_every_text_but_special_token_strings(checkpoints, family):
    tok, hf = _in_graph(checkpoints[family]), hf_tokenizer(checkpoints[family])
    ids, starts, ends = tok.tokenize_with_offsets(tf.constant(TEXTS))
    for text, row, row_starts, row_ends in zip(TEXTS, ids.to_list(), starts.to_list(), ends.to_list()):
        want = hf(text, add_special_tokens=False, return_offsets_mapping=True)
        assert row == want["input_ids"], text
        assert list(zip(row_starts, row_ends)) == byte_offsets(text, want["offset_mapping"]), text


@pytest.mark.parametrize("family", FAMILIES)
def test_pairs_use_the_roberta_template_and_truncate_as_hugging_face(checkpoints, family):
    tok, hf = _in_graph(checkpoints[family]), hf_tokenizer(checkpoints[family])
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
    from tests._model_configs import model_config

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


# -- MPNet's relative-position bias under TF Serving's graph rewrites ----------------------

def _tiny_mpnet_with_positions(directory, positions: int):
    """The tiny MPNet family checkpoint, its model re-made with `positions` position embeddings:
    long enough for token pairs 64 apart, which the 64-position tiny checkpoint never has."""
    import torch
    from transformers import AutoConfig, MPNetModel

    make_family_checkpoint(directory, "mpnet")
    config = AutoConfig.from_pretrained(str(directory))
    config.max_position_embeddings = positions
    torch.manual_seed(0)
    model = MPNetModel(config).eval()
    with torch.no_grad():  # biases as far apart as trained ones, so a bucket off by one shows
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def test_mpnet_bucket_table_is_pytorchs_relative_position_bucket():
    import torch
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    from signatures._relative_buckets import relative_bucket_table

    for num_buckets, max_distance in ((32, 128), (64, 256), (16, 40)):
        positions = torch.arange(-3 * max_distance, 3 * max_distance + 1)
        want = MPNetEncoder.relative_position_bucket(positions, num_buckets, max_distance).numpy()
        table = relative_bucket_table(num_buckets, max_distance)
        got = table[np.clip(positions.numpy(), -max_distance, max_distance) + max_distance]
        np.testing.assert_array_equal(got, want)


def test_mpnet_tokens_64_apart_keep_their_bias_as_tf_serving_runs_the_graph(tmp_path):
    # Grappler's constant folding turned log(n/8)/log(16)*8 into log(n/8)*(8/log(16)): 5.999... at
    # n = 64, one bucket lower, for every token pair 64 apart (signatures/_relative_buckets.py).
    import torch
    from transformers import MPNetModel

    from export._serving_session import ServingSession

    checkpoint = _tiny_mpnet_with_positions(tmp_path / "ckpt", positions=160)
    result = export_model(ExportOptions(model=checkpoint, name="mpnet", output_dir=tmp_path / "models",
                                        max_length=158, verify=False, warmup=False), log=lambda *_: None)
    rng = np.random.default_rng(0)
    ids = np.ones((2, 150), np.int32)  # <pad> is 1: MPNet's position ids skip it
    ids[:, 1:-1] = rng.integers(5, 100, size=(2, 148))
    ids[:, 0], ids[0, -1], ids[1, 99], ids[1, 100:] = 0, 2, 2, 1
    mask = (ids != 1).astype(np.int32)
    session = ServingSession.load(result.path)  # TF Serving's path: TF1 session, default grappler
    try:
        got = session.run("tokens", {"input_ids": ids, "attention_mask": mask})["last_hidden_state"]
    finally:
        session.close()
    with torch.no_grad():
        want = MPNetModel.from_pretrained(str(checkpoint)).eval()(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long)).last_hidden_state.numpy()
    real = mask.astype(bool)
    assert np.abs(got[real] - want[real]).max() <= 1e-5


def _sentence_transformers_embeddings(checkpoint, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """sentence-transformers' all-mpnet-base-v2 pipeline in torch (its tokenizer and max_seq_length,
    mean pooling over real tokens, L2 normalisation): the embeddings and each text's token count."""
    import torch
    from transformers import AutoTokenizer, MPNetModel

    max_length = json.loads((checkpoint / "sentence_bert_config.json").read_text())["max_seq_length"]
    encoded = AutoTokenizer.from_pretrained(str(checkpoint))(texts, padding=True, truncation=True,
                                                             max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = MPNetModel.from_pretrained(str(checkpoint)).eval()(**encoded).last_hidden_state
    m = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy(), encoded["attention_mask"].sum(1).numpy()


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a base-size export with every check: ~5 CPU-minutes, 17 min on a busy 2-core host
def test_real_all_mpnet_base_v2_text_signature_matches_sentence_transformers(mpnet_checkpoint, tmp_path):
    from export._serving_session import ServingSession

    result = export_model(ExportOptions(model=mpnet_checkpoint, task="feature-extraction", name="mpnet",
                                        output_dir=tmp_path, warmup=False), log=lambda *_: None)
    card = result.report
    assert card["parity"]["ok"] and card["task"]["pooling"] == "mean" and card["task"]["normalize"] is True
    assert set(card["tokenizer_parity"]["mismatch_kinds"]) == {"special-tokens"}
    ordinary = [text for kind, text in CORPUS if kind != "special-tokens"]
    texts = ordinary + [" ".join(ordinary[:12])]  # one of ~150 tokens besides the corpus' 384
    want, lengths = _sentence_transformers_embeddings(mpnet_checkpoint, texts)
    assert (np.sort(lengths)[-2:] > 64).all()  # token pairs 64 and more apart, in two texts
    session = ServingSession.load(result.path)
    try:
        got = session.run("text", {"text": np.array([t.encode() for t in texts], dtype=object)})["embedding"]
    finally:
        session.close()
    assert np.abs(got - want).max() <= 1e-5
