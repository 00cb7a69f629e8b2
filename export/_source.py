"""Reading a Transformers checkpoint directory: config, weights, tokenizer files.

>>> ckpt = Checkpoint.open("path/to/all-MiniLM-L6-v2")
>>> ckpt.weights, ckpt.config.model_type, ckpt.tokenizer_files.algorithm
('pytorch', 'bert', 'wordpiece')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export._errors import ExportError
from export._tokenizer_files import TokenizerFiles, read_json

__all__ = ["Checkpoint", "PYTORCH_WEIGHTS", "TF_WEIGHTS"]

TF_WEIGHTS = ("tf_model.h5",)
PYTORCH_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                   "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class Checkpoint:
    """A local checkpoint directory, validated."""

    path: Path
    config: object  # transformers.PretrainedConfig
    weights: str  # "tf" or "pytorch"
    tokenizer_files: TokenizerFiles
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
            architecture = architecture_for(config.model_type)
        except ValueError as exc:
            raise ExportError(f"--model {path}: {exc}") from None
        if any((path / f).is_file() for f in TF_WEIGHTS):
            weights = "tf"
        elif any((path / f).is_file() for f in PYTORCH_WEIGHTS):
            weights = "pytorch"
        else:
            raise ExportError(f"--model {path}: no weights found; expected one of {', '.join(TF_WEIGHTS + PYTORCH_WEIGHTS)}")
        return cls(path=path, config=config, weights=weights,
                   tokenizer_files=TokenizerFiles.read(path, architecture),
                   sentence_transformers=_sentence_transformers(path))

    def default_max_length(self) -> int:
        """sentence-transformers' max_seq_length, else the tokenizer's, capped by the position embeddings."""
        limit = self.max_positions()
        for candidate in (self.sentence_transformers.get("max_seq_length"), self.tokenizer_files.model_max_length):
            if candidate and candidate <= limit:
                return int(candidate)
        return int(limit)

    def _position_offset(self) -> int:
        """RoBERTa-style models start positions after the padding id: 514 embeddings hold 512 tokens."""
        if self.config.model_type in ("roberta", "xlm-roberta", "mpnet"):
            return int(getattr(self.config, "pad_token_id", 1) or 0) + 1
        return 0

    def max_positions(self) -> int:
        """The longest sequence the position embeddings take."""
        return int(getattr(self.config, "max_position_embeddings", 512)) - self._position_offset()

    def build_tokenizer(self, max_length: int, kind: str = "fast"):
        """The in-graph tokenizer from this checkpoint's tokenizer files (ExportError if they are unusable)."""
        return self.tokenizer_files.build(max_length=max_length, vocab_size=int(self.config.vocab_size), kind=kind)


def _sentence_transformers(path: Path) -> dict:
    """Pooling and normalisation of a sentence-transformers folder (modules.json), if it is one."""
    modules = read_json(path / "modules.json")
    if not modules:
        return {}
    settings = {"normalize": any(m.get("type", "").endswith(".Normalize") for m in modules)}
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            pooling = read_json(path / module.get("path", "") / "config.json")
            modes = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens"}
            chosen = [mode for mode, key in modes.items() if pooling.get(key)]
            if chosen:
                settings["pooling"] = chosen[0]
    max_seq = read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if max_seq:
        settings["max_seq_length"] = int(max_seq)
    return settings
