"""Reading a Transformers checkpoint directory: config, weights, tokenizer files.

>>> ckpt = Checkpoint.open("path/to/all-MiniLM-L6-v2")
>>> ckpt.weights, ckpt.config.model_type, ckpt.tokenizer_settings.lower_case
('pytorch', 'bert', True)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from export._errors import ExportError

__all__ = ["Checkpoint", "TokenizerSettings", "PYTORCH_WEIGHTS", "TF_WEIGHTS"]

TF_WEIGHTS = ("tf_model.h5",)
PYTORCH_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                   "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class TokenizerSettings:
    """What the in-graph tokenizer needs from the checkpoint's tokenizer files."""

    vocab_file: Path
    lower_case: bool
    strip_accents: bool | None
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    unk_token: str = "[UNK]"
    pad_token: str = "[PAD]"
    model_max_length: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A local checkpoint directory, validated."""

    path: Path
    config: object  # transformers.PretrainedConfig
    weights: str  # "tf" or "pytorch"
    tokenizer_settings: TokenizerSettings
    sentence_transformers: dict  # pooling / normalize / max_seq_length, when it is a sentence-transformers folder

    @property
    def from_pt(self) -> bool:
        return self.weights == "pytorch"

    @classmethod
    def open(cls, path: str | Path) -> "Checkpoint":
        path = Path(path)
        if not path.exists():
            raise ExportError(f"--model {path}: no such file or directory")
        if not path.is_dir():
            raise ExportError(f"--model {path}: expected a checkpoint directory (config.json, weights, vocab.txt)")
        if not (path / "config.json").is_file():
            raise ExportError(f"--model {path}: no config.json; is this a Transformers checkpoint directory?")
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
        except (ValueError, OSError, KeyError) as exc:
            raise ExportError(f"--model {path}: cannot read config.json: {exc}") from exc
        from signatures import architecture_for

        try:
            architecture_for(config.model_type)
        except ValueError as exc:
            raise ExportError(f"--model {path}: {exc}") from None
        if any((path / f).is_file() for f in TF_WEIGHTS):
            weights = "tf"
        elif any((path / f).is_file() for f in PYTORCH_WEIGHTS):
            weights = "pytorch"
        else:
            raise ExportError(f"--model {path}: no weights found; expected one of {', '.join(TF_WEIGHTS + PYTORCH_WEIGHTS)}")
        return cls(path=path, config=config, weights=weights,
                   tokenizer_settings=_tokenizer_settings(path),
                   sentence_transformers=_sentence_transformers(path))

    def default_max_length(self) -> int:
        """sentence-transformers' max_seq_length, else the tokenizer's, capped by the position embeddings."""
        limit = getattr(self.config, "max_position_embeddings", 512)
        for candidate in (self.sentence_transformers.get("max_seq_length"), self.tokenizer_settings.model_max_length):
            if candidate and candidate <= limit:
                return int(candidate)
        return int(limit)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc


def _tokenizer_settings(path: Path) -> TokenizerSettings:
    vocab = path / "vocab.txt"
    if not vocab.is_file():
        raise ExportError(f"--model {path}: no tokenizer files (vocab.txt); the in-graph tokenizer needs the "
                          "checkpoint's WordPiece vocabulary. Save the tokenizer next to the model "
                          "(tokenizer.save_pretrained(dir)).")
    config = _read_json(path / "tokenizer_config.json")
    special = _read_json(path / "special_tokens_map.json")
    normalizer = (_read_json(path / "tokenizer.json").get("normalizer") or {})
    if normalizer.get("type") == "BertNormalizer":  # the fast tokenizer's own settings win
        lower_case, strip_accents = normalizer.get("lowercase", True), normalizer.get("strip_accents")
    else:
        lower_case, strip_accents = config.get("do_lower_case", True), config.get("strip_accents")

    def token(name: str, default: str) -> str:
        value = special.get(name, config.get(name, default))
        return value["content"] if isinstance(value, dict) else value

    max_len = config.get("model_max_length")
    return TokenizerSettings(
        vocab_file=vocab, lower_case=bool(lower_case), strip_accents=strip_accents,
        cls_token=token("cls_token", "[CLS]"), sep_token=token("sep_token", "[SEP]"),
        unk_token=token("unk_token", "[UNK]"), pad_token=token("pad_token", "[PAD]"),
        model_max_length=int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e6 else None)


def _sentence_transformers(path: Path) -> dict:
    """Pooling and normalisation of a sentence-transformers folder (modules.json), if it is one."""
    modules = _read_json(path / "modules.json")
    if not modules:
        return {}
    settings = {"normalize": any(m.get("type", "").endswith(".Normalize") for m in modules)}
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            pooling = _read_json(path / module.get("path", "") / "config.json")
            modes = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens"}
            chosen = [mode for mode, key in modes.items() if pooling.get(key)]
            if chosen:
                settings["pooling"] = chosen[0]
    max_seq = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if max_seq:
        settings["max_seq_length"] = int(max_seq)
    return settings
