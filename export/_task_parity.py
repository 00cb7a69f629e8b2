"""Token-level tasks: built from the checkpoint, and checked against Hugging Face's pipelines.

`build_token_task` reads what the in-graph post-processing needs from the
checkpoint's fast tokenizer (which tokens continue a word, their lengths) and
checks that the checkpoint's head fits the task. `pipeline_parity` runs
`transformers.pipeline("token-classification" | "question-answering")` on
the PyTorch weights and the exported `text` signature on the same corpus
(punctuation, accents, CJK, emoji, texts longer than the model) and compares
spans, labels and scores per text.

>>> report = pipeline_parity(task, checkpoint, session, tokenizer, max_length=64)
>>> report.mismatches, report.max_score_error
(0, 3.2e-07)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from export._errors import ExportError

__all__ = ["TASK_SCORE_BOUND", "TASK_MISMATCH_SHARE", "QUESTIONS", "build_token_task", "pipeline_parity",
           "TaskParity", "format_task_parity"]

TASK_SCORE_BOUND = 1e-4  # scores within this of the pipeline's
TASK_MISMATCH_SHARE = 0.05  # more differing texts than this share (not explained by the tokenizer) fail the export
QUESTIONS = ["What is it?", "Who does what, where and when?", "Où est le café ?", "这是什么？", "Why 🔥?"]

_HEADS = {"token-classification": "ForTokenClassification", "question-answering": "ForQuestionAnswering"}


def _vocabulary_facts(hf_tokenizer) -> dict:
    """Per vocabulary id: its string's length and whether it opens a word; the pipeline's subword rule.

    Word starts from the vocabulary hold for WordPiece (`##` continues) and SentencePiece (`▁` opens,
    as the Metaspace pre-tokenizer splits); byte-level BPE words are its pre-tokenizer's, which the
    in-graph tokenizer gives itself (`Tokenizer.tokenize_with_words`).
    """
    tokens = hf_tokenizer.convert_ids_to_tokens(list(range(len(hf_tokenizer))))
    model = getattr(getattr(hf_tokenizer, "_tokenizer", None), "model", None)
    prefix = getattr(model, "continuing_subword_prefix", None)
    if prefix:
        opens = [not t.startswith(prefix) for t in tokens]
    else:  # SentencePiece marks the start of a word instead
        opens = [t.startswith(("Ġ", "▁")) for t in tokens]
    return {"token_lengths": [len(t) for t in tokens], "word_starts": opens,
            "subword_rule": "length" if prefix else "space", "unk_id": hf_tokenizer.unk_token_id}


def build_token_task(options, checkpoint, max_length: int):
    """The TokenClassification / QuestionAnswering task for an export, or ExportError saying why not."""
    from export._tokenizer_parity import hf_tokenizer
    from signatures import QuestionAnswering, SegmentPacker, TokenClassification

    config = checkpoint.config
    head = _HEADS[options.task]
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith(head) for a in architectures):
        raise ExportError(f"--model {checkpoint.path}: its head is {', '.join(architectures)}, but --task "
                          f"{options.task} needs a *{head} checkpoint")
    facts = _vocabulary_facts(hf_tokenizer(checkpoint.path))
    try:
        if options.task == TokenClassification.name:
            return TokenClassification.from_config(config, aggregation=options.aggregation_strategy or "simple",
                                                   token_lengths=facts["token_lengths"], unk_id=facts["unk_id"],
                                                   subword_rule=facts["subword_rule"])
        stride = options.doc_stride if options.doc_stride is not None else min(max_length // 2, 128)
        task = QuestionAnswering(doc_stride=stride, max_answer_length=options.max_answer_length or 15,
                                 word_starts=facts["word_starts"])
        template = checkpoint.tokenizer_files.architecture.template  # [CLS] q [SEP] c [SEP], <s> q </s></s> c </s>
        task.question_budget(max_length, SegmentPacker.from_template(template, cls_id=0, sep_id=0,
                                                                     pad_id=0).num_special_tokens(2))
        return task
    except ValueError as exc:
        flag = ("--doc-stride" if "stride" in str(exc) else "--max-answer-length" if "answer" in str(exc)
                else "--aggregation-strategy")
        raise ExportError(f"{flag}: {exc}") from exc


@dataclass
class TaskParity:
    task: str
    texts: int
    mismatches: int = 0  # differing texts the tokenizer does not explain
    tokenizer_explained: int = 0  # differing texts whose tokens differ from the checkpoint's tokenizer
    max_score_error: float = 0.0  # over the texts whose spans and labels agree
    items: int = 0  # entities / answers compared
    documented: dict[str, str] = field(default_factory=dict)  # input the pipeline refuses -> what the export does
    examples: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.mismatches <= TASK_MISMATCH_SHARE * self.texts and self.max_score_error <= TASK_SCORE_BOUND

    def as_dict(self) -> dict:
        return {**{k: v for k, v in vars(self).items()}, "ok": self.ok, "score_bound": TASK_SCORE_BOUND,
                "mismatch_share": TASK_MISMATCH_SHARE}


def _pipeline(task, checkpoint, max_length: int):
    import transformers

    pt_class = getattr(transformers, task.auto_class.removeprefix("TF"))
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = pt_class.from_pretrained(str(checkpoint.path), local_files_only=True).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint.path), use_fast=True,
                                                               local_files_only=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer.model_max_length = max_length
    options = {"aggregation_strategy": task.aggregation} if task.name == "token-classification" else {}
    return transformers.pipeline(task.name, model=model, tokenizer=tokenizer, device="cpu", **options), tokenizer


def _same_tokens(tokenizer, reference, texts: list[str]) -> list[bool]:
    import tensorflow as tf

    ids = tokenizer.tokenize_with_offsets(tf.constant(texts))[0].to_list()
    return [list(got) == reference(t, add_special_tokens=False)["input_ids"] for got, t in zip(ids, texts)]


def _compare(report: TaskParity, kind: str, shown: str, want: list[tuple], got: list[tuple],
             same_tokens: bool, show: int) -> None:
    """want/got: (key..., score) tuples; keys must be equal, scores within the bound."""
    report.items += len(want)
    if [w[:-1] for w in want] == [g[:-1] for g in got]:
        error = max([abs(w[-1] - g[-1]) for w, g in zip(want, got)] + [0.0])
        report.max_score_error = max(report.max_score_error, error)
        if error <= TASK_SCORE_BOUND:
            return
    if same_tokens:
        report.mismatches += 1
    else:
        report.tokenizer_explained += 1
    if len(report.examples) < show:
        report.examples.append({"kind": kind, "input": shown, "pipeline": want[:5], "export": got[:5],
                                "tokenizer_differs": not same_tokens})


def pipeline_parity(task, checkpoint, session, tokenizer, *, max_length: int, texts: list[tuple[str, str]] | None = None,
                    show: int = 5) -> TaskParity:
    """The exported `text` signature (a ServingSession) vs the Hugging Face pipeline on PyTorch weights."""
    import time

    from export._tokenizer_parity import CORPUS

    start = time.perf_counter()
    corpus = [(k, t) for k, t in (texts or CORPUS)]
    pipe, reference = _pipeline(task, checkpoint, max_length)
    report = TaskParity(task=task.name, texts=0)
    if task.name == "token-classification":
        report.settings = {"aggregation_strategy": task.aggregation, "max_length": max_length}
        strings = [t for _, t in corpus]
        out = session.run("text", {"text": np.array([t.encode() for t in strings], dtype=object)})
        same = _same_tokens(tokenizer, reference, strings)
        for i, (kind, text) in enumerate(corpus):
            report.texts += 1
            want = [(e["entity_group"], int(e["start"]), int(e["end"]), float(e["score"]))
                    for e in (pipe(text) if text else [])]
            n = int(out["num_entities"][i])
            got = [(out["entity_label"][i, j].decode(errors="replace"), int(out["entity_start"][i, j]), int(out["entity_end"][i, j]),
                    float(out["entity_score"][i, j])) for j in range(n)]
            _compare(report, kind, text, want, got, same[i], show)
        report.documented[""] = "the pipeline returns [] for the empty string; so does the export"
    else:
        report.settings = {"doc_stride": task.doc_stride, "max_answer_len": task.max_answer_length,
                           "max_seq_len": max_length}
        # Every context with a question, short ones with a second (each long context costs a pipeline call
        # per window).
        pairs = [(kind, q, t) for i, (kind, t) in enumerate(corpus)
                 for q in [QUESTIONS[i % len(QUESTIONS)]] + ([QUESTIONS[(i + 1) % len(QUESTIONS)]] if len(t) < 200 else [])]
        questions, contexts = [q for _, q, _ in pairs], [c for _, _, c in pairs]
        out = session.run("text", {"question": np.array([q.encode() for q in questions], dtype=object),
                                   "context": np.array([c.encode() for c in contexts], dtype=object)})
        same_q, same_c = _same_tokens(tokenizer, reference, questions), _same_tokens(tokenizer, reference, contexts)
        for i, (kind, question, context) in enumerate(pairs):
            got = [(out["answer"][i].decode(errors="replace"), int(out["start"][i]), int(out["end"][i]), float(out["score"][i]))]
            if not context.strip() or not question.strip():
                report.documented[repr(context)] = (f"the pipeline refuses an empty context; the export answers "
                                                    f"{got[0][:3]} with score {got[0][3]:g}")
                continue
            report.texts += 1
            a = pipe(question=question, context=context, doc_stride=task.doc_stride, max_seq_len=max_length,
                     max_answer_len=task.max_answer_length)
            want = [(a["answer"], int(a["start"]), int(a["end"]), float(a["score"]))]
            _compare(report, kind, f"{question} | {context}", want, got, same_q[i] and same_c[i], show)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def format_task_parity(report: dict) -> str:
    figures = (f"{report['texts']} inputs, {report['items']} {'entities' if 'aggregation_strategy' in report['settings'] else 'answers'}; "
               f"{report['mismatches']} differ, {report['tokenizer_explained']} more where the tokenizer differs; "
               f"max score error {report['max_score_error']:.2e} (bound {report['score_bound']:g})")
    settings = ", ".join(f"{k} {v}" for k, v in report["settings"].items())
    lines = [f"pipeline parity ({report['task']}: {settings}): {figures}"
             + ("" if report["ok"] else f"; FAILED (more than {report['mismatch_share']:.0%} differ, or scores)")]
    for example in report["examples"]:
        text = example["input"] if len(example["input"]) <= 70 else example["input"][:67] + "..."
        lines += [f"  {text!r}" + (" (tokenizer differs)" if example["tokenizer_differs"] else ""),
                  f"    pipeline: {example['pipeline']}", f"    export  : {example['export']}"]
    lines += [f"  {k or repr('')}: {v}" for k, v in report["documented"].items()]
    return "\n".join(lines)
