"""Does the in-graph tokenizer give the ids the checkpoint's own (fast) tokenizer gives?

Runs both on a built-in corpus (plain English, punctuation, accents, CJK,
emoji, very long text, the empty string, special-token strings such as
``[CLS]`` in the text, ...) plus an optional file of texts (one a line), and
reports how many texts differ, with the first few shown side by side as
tokens. Any `signatures.Tokenizer` family runs here the same way; known
differences (special-token strings in the text are split like words) are
reported, never hidden.

>>> report = tokenizer_parity(module.tokenizer, hf_tokenizer, max_length=256)
>>> report.mismatches, report.texts
(3, 41)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from export._errors import ExportError

__all__ = ["CORPUS", "TokenizerParity", "read_corpus", "tokenizer_parity", "hf_tokenizer", "format_tokenizer_parity"]

_LONG = " ".join(["Serving a transformer with its tokenizer inside the graph means clients send "
                  "plain strings, and the server does the rest, batch after batch."] * 40)

# (kind, text): what each text exercises is its kind.
CORPUS: list[tuple[str, str]] = [
    ("english", "The quick brown fox jumps over the lazy dog."),
    ("english", "Hello world"),
    ("english", "TensorFlow Serving loads SavedModels and answers gRPC and REST requests."),
    ("english", "a"),
    ("case", "MiXeD CaSe Words AND SHOUTING"),
    ("punctuation", "Wait... what?! (Really) -- yes; no: maybe, \"quoted\" 'single' [brackets] {braces}"),
    ("punctuation", "e-mail: someone@example.com, url: https://example.com/a/b?c=d&e=f#frag"),
    ("numbers", "Call 555-0199 at 10:30pm; pi is 3.14159, 1,000,000 > 999."),
    ("accents", "Café déjà vu, naïve façade, Ångström, São Paulo, Zürich"),
    ("accents", "Crème brûlée à la carte, smørrebrød, Łódź, İstanbul"),
    ("accents", "straße groß ﬁ ligature ﬂow"),
    ("greek", "ΟΔΟΣ ΣΟΦΟΣ Ελληνικά"),
    ("cyrillic", "Привет, мир! Как дела?"),
    ("arabic", "مرحبا بالعالم"),
    ("cjk", "我爱自然语言处理。"),
    ("cjk", "東京は日本の首都です"),
    ("cjk", "한국어 텍스트도 있습니다"),
    ("cjk", "Mixed 中文 and English 文字"),
    ("emoji", "I love this 😍🔥👍 so much!!!"),
    ("emoji", "👩‍👩‍👧‍👦 family, 🇫🇷 flag, ✨ sparkles"),
    ("whitespace", "  leading and trailing spaces   "),
    ("whitespace", "tabs\tand\nnew\r\nlines\u00a0and\u2003em spaces"),
    ("control", "zero\u200bwidth\u200cjoiners and soft\u00adhyphen\x07bell"),
    ("special-tokens", "[CLS] starts here and [SEP] ends here"),
    ("special-tokens", "a [MASK] token, an [UNK] one and [PAD]"),
    ("special-tokens", "<s> starts here, </s> ends it: a <mask> and <pad>"),
    ("long", _LONG),
    ("empty", ""),
    ("unknown", "⅓ ½ ∑ ∫ ≈ ≠ ⊕ ☃ ♞"),
    ("repetition", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("long-word", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
]


def read_corpus(path: str | Path) -> list[str]:
    """One text a line (blank lines included: the empty string is a text)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"--parity-corpus {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ExportError(f"--parity-corpus {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    return [line.rstrip("\r") for line in lines]


def hf_tokenizer(checkpoint_path: str | Path):
    """The checkpoint's Python fast tokenizer."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(checkpoint_path), use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ExportError(f"--model {checkpoint_path}: cannot load its tokenizer for the parity check: {exc}") from exc


@dataclass
class TokenizerParity:
    texts: int
    mismatches: int
    sources: dict[str, int]
    examples: list[dict] = field(default_factory=list)  # first few: text, reference tokens, in-graph tokens
    mismatch_kinds: dict[str, int] = field(default_factory=dict)  # built-in kinds (or "file") -> count

    def as_dict(self) -> dict:
        return {"texts": self.texts, "mismatches": self.mismatches, "sources": self.sources,
                "mismatch_kinds": self.mismatch_kinds, "examples": self.examples}


def tokenizer_parity(tokenizer, reference, *, max_length: int, extra: list[str] | None = None,
                     show: int = 5, batch_size: int = 256) -> TokenizerParity:
    """Compare `tokenizer` (in-graph, a signatures.Tokenizer) with `reference` (HF fast) per text."""
    import tensorflow as tf
    from tqdm import tqdm

    texts = [(kind, text) for kind, text in CORPUS] + [("file", t) for t in extra or []]
    ref_vocab = {i: t for t, i in reference.get_vocab().items()}
    graph_vocab = dict(enumerate(tokenizer.get_vocabulary()))
    report = TokenizerParity(texts=len(texts), mismatches=0,
                             sources={"built-in": len(CORPUS), "file": len(extra or [])})
    chunks = range(0, len(texts), batch_size)
    for start in tqdm(chunks, desc="tokenizer parity", unit="batch", disable=None if len(chunks) > 2 else True):
        batch = texts[start:start + batch_size]
        strings = [t for _, t in batch]
        encoded = tokenizer(tf.constant(strings))
        ids, mask = encoded["input_ids"].numpy(), encoded["attention_mask"].numpy()
        expected = reference(strings, truncation=True, max_length=max_length)["input_ids"]
        for (kind, text), row, row_mask, want in zip(batch, ids, mask, expected):
            got = row[row_mask.astype(bool)].tolist()
            if got == list(want):
                continue
            report.mismatches += 1
            report.mismatch_kinds[kind] = report.mismatch_kinds.get(kind, 0) + 1
            if len(report.examples) < show:
                report.examples.append({"kind": kind, "text": text,
                                        "reference": [ref_vocab.get(i, f"<{i}>") for i in want],
                                        "in_graph": [graph_vocab.get(i, f"<{i}>") for i in got],
                                        "reference_ids": list(want), "in_graph_ids": got})
    return report


def _window(tokens: list[str], start: int, width: int) -> str:
    shown = tokens[start:start + width]
    return ("… " if start else "") + " ".join(shown) + (" …" if start + width < len(tokens) else "")


def format_tokenizer_parity(report: dict, strict: bool = False, width: int = 14) -> str:
    """`N of M texts differ` and the first few side by side, from the first differing token."""
    head = (f"tokenizer parity: {report['mismatches']} of {report['texts']} texts differ from the checkpoint's "
            "fast tokenizer")
    if not report["mismatches"]:
        return head.replace(f"{report['mismatches']} of {report['texts']} texts differ from",
                            f"all {report['texts']} texts match")
    kinds = ", ".join(f"{k} {n}" for k, n in report.get("mismatch_kinds", {}).items())
    lines = [f"{head} ({kinds}); "
             + ("fatal (--strict-tokenizer)" if strict else "a warning (--strict-tokenizer makes it fatal)")]
    for example in report["examples"]:
        ref, got = example["reference"], example["in_graph"]
        if ref == got:  # same strings, different ids: the vocabularies disagree
            ref, got = ([str(i) for i in example[k]] for k in ("reference_ids", "in_graph_ids"))
        first = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        start = max(0, first - 3)
        text = example["text"] if len(example["text"]) <= 70 else example["text"][:67] + "..."
        lines += [f"  {text!r}",
                  f"    reference: {_window(ref, start, width)}",
                  f"    in-graph : {_window(got, start, width)}"]
    if report["mismatches"] > len(report["examples"]):
        lines.append(f"  ... and {report['mismatches'] - len(report['examples'])} more")
    return "\n".join(lines)
