"""Token classification and question answering for RoBERTa (byte-level BPE) and XLM-RoBERTa (SentencePiece).

Tiny random checkpoints with the families' real tokenizers (GPT-2's byte-level
ranks; a SentencePiece model trained on the spot) are exported once per
module with verification on: the export's own pipeline parity (the exported
`text` signature against `transformers.pipeline` on the PyTorch weights, over
the parity corpus) is what the parity tests read. The families differ from
WordPiece where the post-processing looks: byte-level words are GPT-2's
pre-tokenizer splits (`London` and `.` are two words), SentencePiece spans
give a word's `▁` the whitespace before it, and both pack `<s> q </s></s> c </s>`.
"""
from __future__ import annotations

import pytest
import tensorflow as tf

from clients import GrpcClient, RestClient, answers, entities
from export import ExportError, ExportOptions, export_model
from server import ServerProcess
from tests._checkpoints import make_family_checkpoint
from tests._model_configs import model_config
from tests._signature_checks import call, same_rows

# The module's fixture exports four checkpoints with full verification (the pipelines run on every
# corpus text); on a loaded 2-core machine that alone took 12 minutes, over the suite's 15-minute default.
pytestmark = pytest.mark.timeout(1800)

FAMILIES = ("roberta", "xlm-roberta")
# One aggregation strategy per family keeps it to one export per checkpoint; each family's other
# strategy shares everything but the word grouping, which the other family's export covers.
AGGREGATION = {"roberta": "first", "xlm-roberta": "simple"}
TEXTS = ["Ada Lovelace, born in London in 1815.", "  leading and  double  spaces ", "Café déjà vu à São Paulo!",
         "東京は日本の首都です", "I love this 😍🔥 so much!!!", "tabs\tand\r\nlines\u00a0here", "ﬁ ½ x", "", "   "]
TASKS = {"ner": "token-classification", "qa": "question-answering"}
CONTEXT = "Ada Lovelace, born in London in 1815, wrote the first program for Babbage's engine. " * 3


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, gpt2_ranks):
    base = tmp_path_factory.mktemp("family-tasks")
    return {(family, short): make_family_checkpoint(base / f"{family}-{short}", family, task=task)
            for family in FAMILIES for short, task in TASKS.items()}


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    results = {}
    for (family, short), checkpoint in checkpoints.items():
        options = {"aggregation_strategy": AGGREGATION[family]} if short == "ner" else {}
        # No warmup, no length buckets (token-level tasks' `text` never buckets): neither is the subject here.
        results[family, short] = export_model(ExportOptions(
            model=checkpoint, task=TASKS[short], name=f"{family}-{short}", output_dir=out, warmup=False,
            length_buckets=False, **options), log=lambda *_: None)
    return results


@pytest.mark.parametrize("family", FAMILIES)
def test_entities_equal_the_token_classification_pipeline(exported, family):
    parity = exported[family, "ner"].report["pipeline_parity"]
    assert parity["settings"]["aggregation_strategy"] == AGGREGATION[family]
    assert parity["ok"] and parity["texts"] >= 30 and parity["items"] > 50
    assert parity["mismatches"] == 0, parity["examples"]
    assert parity["max_score_error"] <= 1e-4
    # Only the text with special-token strings (`<s>`, `</s>`, `<mask>`) may differ, and it is reported.
    assert parity["tokenizer_explained"] <= 1
    assert all(e["tokenizer_differs"] and "<s>" in e["input"] for e in parity["examples"])


@pytest.mark.parametrize("family", FAMILIES)
def test_answers_equal_the_question_answering_pipeline(exported, family):
    parity = exported[family, "qa"].report["pipeline_parity"]
    assert parity["ok"] and parity["texts"] >= 50
    assert parity["mismatches"] == 0, parity["examples"]
    assert parity["max_score_error"] <= 1e-4
    # <s> q </s></s> c </s>: four special tokens, so 62 - 4 - 31 - 1 question tokens
    assert parity["settings"] == {"doc_stride": 31, "max_answer_len": 15, "max_seq_len": 62}
    assert exported[family, "qa"].report["task"]["question_tokens"] == 26


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", ["ner", "qa"])
def test_op_check_passes_for_serving_2_20(exported, family, task):
    ops = exported[family, task].report["ops"]
    assert ops["missing"] == {} and ops["target_serving"] == "2.20.0"


@pytest.mark.parametrize("family", FAMILIES)
def test_words_are_the_pre_tokenizers_as_hugging_face_numbers_them(checkpoints, family):
    from transformers import AutoTokenizer

    from export._source import Checkpoint
    from export._task_parity import _vocabulary_facts

    checkpoint = Checkpoint.open(checkpoints[family, "qa"])
    tok, hf = checkpoint.build_tokenizer(62), AutoTokenizer.from_pretrained(str(checkpoint.path))
    ids, _, _, opens = tok.tokenize_with_words(tf.constant(TEXTS + [CONTEXT]))
    if opens is None:  # SentencePiece: the vocabulary tells (`▁` opens a word)
        opens = tf.ragged.map_flat_values(lambda i: tf.gather(_vocabulary_facts(hf)["word_starts"], i), ids)
    for text, row in zip(TEXTS + [CONTEXT], opens.to_list()):
        words = hf(text, add_special_tokens=False).word_ids()
        assert row == [i == 0 or w != words[i - 1] for i, w in enumerate(words)], text


def test_doc_stride_leaves_room_for_the_roberta_template(checkpoints, tmp_path):
    # 62 - 4 special tokens - 57 leaves no question token (BERT's 3 special tokens would leave one)
    with pytest.raises(ExportError, match=r"--doc-stride: doc stride 57 leaves no room .*\(4 special tokens\)"):
        export_model(ExportOptions(model=checkpoints["roberta", "qa"], task="question-answering", name="qa",
                                   output_dir=tmp_path, doc_stride=57), log=lambda *_: None)
    assert not (tmp_path / "qa").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_entity_offsets_index_the_text_as_sent(exported, family):
    path = exported[family, "ner"].path
    decoded = entities(call(path, "text", {"text": TEXTS}))
    assert decoded[-2] == []  # ""; byte-level BPE gives whitespace tokens (`Ġ`), so "   " may have entities
    assert sum(len(row) for row in decoded) >= 5
    for text, row in zip(TEXTS, decoded):
        for entity in row:
            assert text[entity["start"]:entity["end"]] == entity["word"], (text, entity)


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_offsets_index_the_context_across_windows(exported, family):
    path = exported[family, "qa"].path
    contexts = [CONTEXT, TEXTS[1], TEXTS[5], ""]
    out = answers(call(path, "text", {"question": ["Who wrote it?", "What?", "Where?", "Why?"], "context": contexts}))
    for context, answer in zip(contexts, out):
        assert context[answer["start"]:answer["end"]] == answer["answer"]
    assert out[0]["score"] > 0 and out[-1] == {"answer": "", "score": 0.0, "start": 0, "end": 0}


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    config = model_config({r.path.parent.name: r.path.parent for r in exported.values()},
                          tmp_path_factory.mktemp("config") / "models.config")
    names = [r.path.parent.name for r in exported.values()]
    with ServerProcess([f"--model_config_file={config}"], models=names, timeout=300) as server:
        yield server


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_clients_decode_entities_and_answers_of_both_families(served, exported, transport):
    cls, address = (RestClient, served.rest_url) if transport == "rest" else (GrpcClient, served.grpc_target)
    questions = ["Who?", "Where was she born?", "When?"]
    contexts = [CONTEXT, TEXTS[0], TEXTS[2]]
    with cls(address, timeout=600) as client:  # no warmup: the first call of each model builds its graph
        for family in FAMILIES:
            ner, qa = exported[family, "ner"].path, exported[family, "qa"].path
            want = entities(call(ner, "text", {"text": TEXTS}))
            assert same_rows(entities(client.predict(ner.parent.name, TEXTS)), want)
            want_qa = answers(call(qa, "text", {"question": questions, "context": contexts}))
            got = client.predict_batched(qa.parent.name, {"question": questions, "context": contexts}, batch_size=2)
            assert same_rows(answers(got), want_qa)
