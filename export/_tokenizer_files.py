"""The checkpoint's tokenizer files -> the in-graph tokenizer of its architecture.

What `signatures` needs is read from the files `save_pretrained` writes:
`vocab.txt` (WordPiece), `vocab.json` + `merges.txt` or `tokenizer.json`
(byte-level BPE), `sentencepiece.bpe.model` / `spiece.model` (SentencePiece),
plus `tokenizer_config.json`, `special_tokens_map.json` and `tokenizer.json`'s
normaliser / pre-tokeniser settings. Missing or inconsistent files are an
ExportError here, before anything is written.

>>> files = TokenizerFiles.read(Path("ckpt"), architecture_for("roberta"))
>>> files.algorithm, [p.name for p in files.paths]
('byte_pair', ['vocab.json', 'merges.txt'])
>>> tokenizer = files.build(max_length=128, vocab_size=50265)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from export._errors import ExportError

__all__ = ["TokenizerFiles", "read_json"]

_DEFAULT_SPECIAL = {
    "bert": {"cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "pad": "[PAD]", "mask": "[MASK]"},
    "roberta": {"cls": "<s>", "sep": "</s>", "unk": "<unk>", "pad": "<pad>", "mask": "<mask>"},
}
_SENTENCEPIECE_FILES = ("sentencepiece.bpe.model", "spiece.model")


def read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc


@dataclass(frozen=True)
class TokenizerFiles:
    """Which files the in-graph tokenizer reads, and the settings they carry."""

    algorithm: str  # "wordpiece", "byte_pair", "sentencepiece"
    paths: list[Path]
    special_tokens: dict[str, str]
    architecture: object  # signatures.Architecture
    options: dict = field(default_factory=dict)  # lower_case, strip_accents, add_prefix_space
    model_max_length: int | None = None

    @classmethod
    def read(cls, path: Path, architecture) -> "TokenizerFiles":
        config = read_json(path / "tokenizer_config.json")
        special_map = read_json(path / "special_tokens_map.json")
        fast = read_json(path / "tokenizer.json")

        def token(role: str, default: str) -> str:
            value = special_map.get(f"{role}_token", config.get(f"{role}_token", default))
            return value["content"] if isinstance(value, dict) else value

        special = {role: token(role, default) for role, default in _DEFAULT_SPECIAL[architecture.template].items()}
        max_len = config.get("model_max_length")
        common = dict(special_tokens=special, architecture=architecture,
                      model_max_length=int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e6 else None)
        algorithm = architecture.tokenizer
        if algorithm == "wordpiece":
            return cls(algorithm, [_need(path, "vocab.txt", "the WordPiece vocabulary")],
                       options=_wordpiece_options(config, fast), **common)
        if algorithm == "byte_pair":
            pre = fast.get("pre_tokenizer") or {}
            prefix = pre.get("add_prefix_space", config.get("add_prefix_space", False))
            options = {"add_prefix_space": bool(prefix)}
            if (path / "vocab.json").is_file():
                merges = _need(path, "merges.txt", "the BPE merges that belong with vocab.json")
                return cls(algorithm, [path / "vocab.json", merges], options=options, **common)
            if (fast.get("model") or {}).get("type") == "BPE":
                return cls(algorithm, [path / "tokenizer.json"], options=options, **common)
            raise ExportError(f"--model {path}: no byte-level BPE tokenizer files; {architecture.model_type} needs "
                              f"{TOKENIZER_FILES_TEXT['byte_pair']} (tokenizer.save_pretrained(dir) writes them)")
        found = [path / name for name in _SENTENCEPIECE_FILES if (path / name).is_file()]
        if not found:
            raise ExportError(f"--model {path}: no SentencePiece model; {architecture.model_type} needs "
                              f"{TOKENIZER_FILES_TEXT['sentencepiece']} (tokenizer.save_pretrained(dir) with the "
                              "slow tokenizer's files writes it)")
        return cls(algorithm, found[:1], **common)

    def build(self, *, max_length: int, vocab_size: int, kind: str = "fast"):
        """The in-graph tokenizer; ExportError when the files disagree with each other or the model."""
        from signatures import BytePairTokenizer, SentencePieceTokenizer, WordPieceTokenizer

        arch = self.architecture
        tokens = {f"{role}_token": name for role, name in self.special_tokens.items()}
        common = dict(max_length=max_length, template=arch.template, uses_token_type_ids=arch.uses_token_type_ids)
        try:
            if self.algorithm == "wordpiece":
                tokenizer = WordPieceTokenizer(str(self.paths[0]), kind=kind, **self.options, **tokens, **common)
            elif self.algorithm == "byte_pair":
                tokenizer = BytePairTokenizer(*map(str, self.paths), **self.options, **tokens, **common)
            else:
                tokenizer = SentencePieceTokenizer(str(self.paths[0]), vocab_size=vocab_size,
                                                   **self._sentencepiece_ids(), **common)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        if tokenizer.vocab_size > vocab_size:
            raise ExportError(f"{self.paths[0]}: the tokenizer has {tokenizer.vocab_size} ids but the model embeds "
                              f"{vocab_size} (config.json vocab_size); the files belong to different checkpoints")
        return tokenizer

    def _sentencepiece_ids(self) -> dict:
        if self.architecture.fairseq_ids:  # <s> <pad> </s> <unk>, the pieces, <mask>
            return {"id_offset": 1, "special_tokens": {"cls": 0, "pad": 1, "sep": 2, "unk": 3},
                    "appended": ("mask",)}
        # ALBERT-style: the special tokens are pieces of the model itself.
        return {"special_tokens": {role: name for role, name in self.special_tokens.items() if role != "mask"}}


TOKENIZER_FILES_TEXT = {
    "wordpiece": "vocab.txt",
    "byte_pair": "vocab.json + merges.txt, or a tokenizer.json with a BPE model",
    "sentencepiece": " or ".join(_SENTENCEPIECE_FILES),
}


def _need(path: Path, name: str, what: str) -> Path:
    if not (path / name).is_file():
        raise ExportError(f"--model {path}: no tokenizer files ({name}): {what}; save the tokenizer next to the model "
                          "(tokenizer.save_pretrained(dir))")
    return path / name


def _wordpiece_options(config: dict, fast: dict) -> dict:
    normalizer = fast.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":  # the fast tokenizer's own settings win
        return {"lower_case": bool(normalizer.get("lowercase", True)), "strip_accents": normalizer.get("strip_accents")}
    return {"lower_case": bool(config.get("do_lower_case", True)), "strip_accents": config.get("strip_accents")}
