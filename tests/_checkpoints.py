"""Tiny random Transformers checkpoints, made on the spot (nothing is downloaded).

A generated WordPiece vocabulary (special tokens, characters, a few hundred
words and their `##` continuations) and a BERT small enough to export in
seconds. `make_checkpoint(dir, task=..., weights="pytorch"|"tf")` writes what
`save_pretrained` writes: config.json, weights, vocab.txt and tokenizer files.
"""
from __future__ import annotations

import string
from pathlib import Path

from server._env import set_defaults as set_env_defaults

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """the a an of to and in is it that for on with as was be by this are from or at not have
hello world sentence model serving tensor export token text fast slow good bad great terrible
movie film love hate happy sad cat dog house tree water fire earth wind city country people time
day night year week month one two three four five six seven eight nine ten quick brown fox jumps
over lazy test testing tested tests run running runs server client request response batch""".split()


NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
PYTORCH_CLASSES = {"text-classification": "BertForSequenceClassification",
                   "token-classification": "BertForTokenClassification",
                   "question-answering": "BertForQuestionAnswering"}
HEAD_SCALE = {"token-classification": 40.0, "question-answering": 40.0}


def make_vocab(path: Path) -> Path:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = SPECIAL + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    pieces += WORDS + ["##" + s for s in ("ing", "ed", "er", "ly", "est")]
    pieces = list(dict.fromkeys(pieces))  # a duplicate would shift every id after it
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return path


def tiny_config(vocab_size: int, **overrides):
    from transformers import BertConfig

    params = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
    params.update(overrides)
    return BertConfig(**params)


def make_checkpoint(directory: Path, task: str = "feature-extraction", weights: str = "pytorch",
                    labels: tuple[str, ...] = ("negative", "positive"), seed: int = 0) -> Path:
    """Write a tiny random BERT checkpoint with its tokenizer into `directory`."""
    set_env_defaults()
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = make_vocab(directory / "vocab.txt")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(directory)
    n = len(vocab.read_text(encoding="utf-8").split("\n")) - 1
    extra = {}
    if task == "token-classification" and labels == ("negative", "positive"):
        labels = NER_LABELS
    if task in ("text-classification", "token-classification"):
        extra = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={label: i for i, label in enumerate(labels)})
    config = tiny_config(n, **extra)
    if weights == "pytorch":
        import torch
        import transformers

        torch.manual_seed(seed)
        model = getattr(transformers, PYTORCH_CLASSES.get(task, "BertModel"))(config).eval()
        if task in HEAD_SCALE:  # random heads give near-ties; wider logits make the labels and spans stable
            with torch.no_grad():
                head = model.classifier if task == "token-classification" else model.qa_outputs
                head.weight.mul_(HEAD_SCALE[task])
        model.save_pretrained(directory, safe_serialization=True)
    else:
        import tensorflow as tf
        from transformers import TFBertForSequenceClassification, TFBertModel

        tf.random.set_seed(seed)
        cls = TFBertForSequenceClassification if task == "text-classification" else TFBertModel
        model = cls(config)
        model(model.dummy_inputs)
        model.save_pretrained(directory)
    return directory


_AUTO_CLASSES = {"text-classification": "AutoModelForSequenceClassification",
                 "token-classification": "AutoModelForTokenClassification",
                 "question-answering": "AutoModelForQuestionAnswering"}


def _save_model(directory: Path, config, task: str, labels: tuple[str, ...], seed: int) -> None:
    """Random PyTorch weights for `config`, with the task's head (AutoModel for feature extraction)."""
    import torch
    import transformers

    if task == "token-classification" and labels == ("negative", "positive"):
        labels = NER_LABELS
    if task in ("text-classification", "token-classification"):
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(seed)
    model = getattr(transformers, _AUTO_CLASSES.get(task, "AutoModel")).from_config(config).eval()
    if task in HEAD_SCALE:  # as make_checkpoint: wider logits keep labels and spans away from near-ties
        with torch.no_grad():
            head = model.qa_outputs if task == "question-answering" else model.classifier
            head.weight.mul_(HEAD_SCALE[task])
    model.save_pretrained(directory, safe_serialization=True)


_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


def make_family_checkpoint(directory: Path, family: str, task: str = "feature-extraction",
                           labels: tuple[str, ...] = ("negative", "positive"), seed: int = 0) -> Path:
    """A tiny random checkpoint of another family with a real tokenizer.

    - "roberta": GPT-2's byte-level BPE (tests/_vocabularies.py downloads the ranks).
    - "xlm-roberta": a SentencePiece model trained here on a generated multilingual corpus.
    - "mpnet": this module's WordPiece vocabulary with MPNet's `<s>` / `</s>` special tokens.
    """
    set_env_defaults()
    from transformers import AutoTokenizer, MPNetConfig, MPNetTokenizerFast, RobertaConfig, XLMRobertaConfig

    from tests import _vocabularies

    directory.mkdir(parents=True, exist_ok=True)
    if family == "roberta":
        _vocabularies.write_roberta_tokenizer(_vocabularies.gpt2_ranks(), directory, model_max_length=62)
        config_cls = RobertaConfig
    elif family == "xlm-roberta":
        _vocabularies.write_xlmr_tokenizer(directory, model_max_length=62)
        config_cls = XLMRobertaConfig
    elif family == "mpnet":
        vocab = make_vocab(directory / "vocab.txt")
        pieces = ["<s>", "<pad>", "</s>", "<unk>"] + vocab.read_text(encoding="utf-8").split("\n")[:-1] + ["<mask>"]
        vocab.write_text("\n".join(pieces) + "\n", encoding="utf-8")
        MPNetTokenizerFast(vocab_file=str(vocab), do_lower_case=True, model_max_length=62).save_pretrained(directory)
        config_cls = MPNetConfig
    else:
        raise ValueError(f"no tiny checkpoint recipe for {family!r}")
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    config = config_cls(vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **_TINY)
    _save_model(directory, config, task, labels, seed)
    return directory
