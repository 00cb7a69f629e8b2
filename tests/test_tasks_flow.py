"""Token classification and question answering through the whole flow.

Tiny random checkpoints (seeded, PyTorch weights) are exported once per
module with verification on, so the export's own pipeline parity (the
exported `text` signature vs `transformers.pipeline` on the same weights)
is what the first tests read; then the models are served by `python -m
server` and called with the clients over REST and gRPC.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from clients import GrpcClient, InvalidArgumentError, RestClient, answers, entities
from export import ExportError, ExportOptions, export_model, read_signatures
from server import ServerProcess
from tests._checkpoints import make_checkpoint
from tests._model_configs import model_config
from tests._signature_checks import call, same_rows

TEXTS = ["Ada Lovelace was born in London.", "Café déjà vu à São Paulo, naïve!", "東京は日本の首都です",
         "I love this 😍🔥 so much", "", "   ", "tabs\tand\u00a0spaces " * 9]
CONTEXT = "Ada Lovelace, born in London in 1815, wrote the first program for Babbage's engine. " * 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("tasks")
    results = {}
    for task, name in (("token-classification", "ner"), ("question-answering", "qa")):
        checkpoint = make_checkpoint(base / f"ckpt-{name}", task=task)
        results[name] = export_model(ExportOptions(model=checkpoint, task=task, name=name, output_dir=base / "models",
                                                   warmup_records=8), log=lambda *_: None)
    return results


def test_entities_equal_the_token_classification_pipeline(exported):
    parity = exported["ner"].report["pipeline_parity"]
    assert parity["ok"] and parity["texts"] >= 30 and parity["items"] > 100
    assert parity["mismatches"] == 0, parity["examples"]
    assert parity["max_score_error"] <= 1e-4
    # Only texts the in-graph tokenizer splits differently (special-token strings) may differ.
    assert all(e["tokenizer_differs"] for e in parity["examples"])


def test_answers_equal_the_question_answering_pipeline(exported):
    parity = exported["qa"].report["pipeline_parity"]
    assert parity["ok"] and parity["texts"] >= 50
    assert parity["mismatches"] == 0, parity["examples"]
    assert parity["max_score_error"] <= 1e-4
    assert parity["settings"] == {"doc_stride": 32, "max_answer_len": 15, "max_seq_len": 64}


def test_model_cards_describe_the_tasks(exported):
    ner, qa = exported["ner"].report, exported["qa"].report
    assert ner["task"]["aggregation_strategy"] == "simple" and ner["task"]["labels"][1] == "B-PER"
    assert qa["task"]["doc_stride"] == 32 and qa["task"]["question_tokens"] == 28
    for card in (ner, qa):
        assert card["ops"]["missing"] == {} and card["ops"]["target_serving"] == "2.20.0"
        assert card["warmup"]["replayed"] >= 1 and "text" in card["warmup"]["shapes"]


def test_signatures_take_strings_and_return_dense_outputs(exported):
    ner = read_signatures(exported["ner"].path)
    assert ner["serving_default"] == ner["text"]
    assert ner["text"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert ner["text"]["outputs"]["entity_label"] == {"dtype": "string", "shape": [-1, -1]}
    assert ner["text"]["outputs"]["num_entities"] == {"dtype": "int32", "shape": [-1]}
    assert set(ner["tokens"]["outputs"]) == {"logits", "label", "score"}
    qa = read_signatures(exported["qa"].path)
    assert set(qa["text"]["inputs"]) == {"question", "context"}
    assert set(qa["text"]["outputs"]) == {"answer", "start", "end", "score"}
    assert set(qa["tokens"]["outputs"]) == {"start_logits", "end_logits"}


def test_entity_offsets_index_the_text_as_sent(exported):
    out = call(exported["ner"].path, "text", {"text": TEXTS})
    decoded = entities(out)
    assert decoded[4] == [] and decoded[5] == []  # empty and whitespace-only: no entities
    assert any(decoded[i] for i in (1, 2, 3))
    for text, row in zip(TEXTS, decoded):
        for entity in row:
            assert text[entity["start"]:entity["end"]] == entity["word"]
    for i, text in enumerate(TEXTS):  # a row alone gives what it gives in the batch
        assert same_rows(entities(call(exported["ner"].path, "text", {"text": [text]})), [decoded[i]])


def test_long_context_answer_comes_from_the_windows(exported):
    contexts = [CONTEXT, CONTEXT[:60], ""]
    out = answers(call(exported["qa"].path, "text", {"question": ["Who wrote it?", "Where?", "What?"],
                                                      "context": contexts}))
    for context, answer in zip(contexts, out):
        assert context[answer["start"]:answer["end"]] == answer["answer"]
    assert out[0]["score"] > 0 and out[2] == {"answer": "", "score": 0.0, "start": 0, "end": 0}
    blank = answers(call(exported["qa"].path, "text", {"question": ["  "], "context": [CONTEXT]}))
    assert blank == [{"answer": "", "score": 0.0, "start": 0, "end": 0}]


def test_question_and_context_batches_must_match(exported):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        call(exported["qa"].path, "text", {"question": ["a", "b"], "context": ["c"]})


def test_head_that_does_not_fit_the_task_is_refused(tiny_classifier_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="ForSequenceClassification.*needs a \\*ForTokenClassification"):
        export_model(ExportOptions(model=tiny_classifier_checkpoint, task="token-classification", name="x",
                                   output_dir=tmp_path), log=lambda *_: None)
    with pytest.raises(ExportError, match="--doc-stride applies to --task question-answering only"):
        export_model(ExportOptions(model=tiny_classifier_checkpoint, task="text-classification", name="x",
                                   output_dir=tmp_path, doc_stride=16), log=lambda *_: None)
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    config = model_config({name: r.path.parent for name, r in exported.items()},
                          tmp_path_factory.mktemp("config") / "models.config")
    with ServerProcess([f"--model_config_file={config}"], models=["ner", "qa"], timeout=300) as server:
        yield server


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_served_tasks_decode_to_python_objects_in_input_order(served, exported, transport):
    cls, address = (RestClient, served.rest_url) if transport == "rest" else (GrpcClient, served.grpc_target)
    want = entities(call(exported["ner"].path, "text", {"text": TEXTS}))
    questions = ["Who?", "Where was she born?", "When?", "What?"] * 3
    contexts = [CONTEXT[: 20 * (i + 1)] for i in range(len(questions))]
    want_qa = answers(call(exported["qa"].path, "text", {"question": questions, "context": contexts}))
    with cls(address, timeout=60) as client:
        assert same_rows(entities(client.predict("ner", TEXTS)), want)
        batched = client.predict_batched("ner", TEXTS * 3, batch_size=2)
        assert same_rows(entities(batched), want * 3)
        qa = client.predict_batched("qa", {"question": questions, "context": contexts}, batch_size=5)
        assert same_rows(answers(qa), want_qa)


def test_rest_errors_for_bad_question_answering_requests(served):
    url = f"{served.rest_url}/v1/models/qa:predict"
    missing = requests.post(url, json={"inputs": {"question": ["Where?"]}}, timeout=60)
    assert missing.status_code == 400 and "context" in missing.json()["error"]
    uneven = requests.post(url, json={"inputs": {"question": ["a", "b"], "context": ["c"]}}, timeout=60)
    assert uneven.status_code == 400 and "same batch size" in uneven.json()["error"]
    with RestClient(served.rest_url, timeout=60) as client, pytest.raises(InvalidArgumentError):
        client.predict("qa", {"question": ["a", "b"], "context": ["c"]})


def test_cli_writes_entities_and_answers_as_jsonl(served, tmp_path):
    rows = tmp_path / "qa.jsonl"
    rows.write_text("\n".join(json.dumps({"question": "Where?", "context": c}) for c in (CONTEXT, "")) + "\n")
    args = [sys.executable, "-m", "clients", "predict", "--rest-port", str(served.rest_port)]
    ner = subprocess.run(args + ["--model", "ner", "--text", TEXTS[0], "--text", ""], capture_output=True,
                         text=True, timeout=120)
    lines = [json.loads(line) for line in ner.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1] and lines[1]["entities"] == []
    assert all(TEXTS[0][e["start"]:e["end"]] == e["word"] for e in lines[0]["entities"])
    qa = subprocess.run(args + ["--model", "qa", "--input", str(rows)], capture_output=True, text=True, timeout=120)
    answer = [json.loads(line)["answer"] for line in qa.stdout.splitlines()]
    assert CONTEXT[answer[0]["start"]:answer[0]["end"]] == answer[0]["answer"] and answer[1]["answer"] == ""
