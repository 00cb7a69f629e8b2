"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

The format of TF Serving's saved_model_warmup.md: a TFRecord file of
`tensorflow.serving.PredictionLog` protos, here `predict_log` records, at most
`protocol.WARMUP_MAX_RECORDS` (1000) of them. TF Serving replays them when it
loads the version, before it reports AVAILABLE, so the first real request
does not pay for lazy initialisation (tokenizer tables, kernels, memory).

The requests cover every signature over a spread of batch sizes and sequence
lengths (`shapes`); texts are made of whole vocabulary words so a request of
length L really tokenizes to L tokens.

>>> write_warmup(staged, "minilm", signatures, tokenizer.get_vocabulary(), max_length=256)
40
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export._errors import ExportError, VerificationError
from protocol import DEFAULT_SIGNATURE, WARMUP_DIR, WARMUP_FILE, WARMUP_MAX_RECORDS

__all__ = ["BATCH_SIZES", "SEQUENCE_LENGTHS", "TOKEN_BUDGET", "shapes", "warmup_requests", "write_warmup",
           "read_warmup", "replay", "check_records_option"]

BATCH_SIZES = (1, 4, 16)
SEQUENCE_LENGTHS = (16, 64)  # plus the export's max length
TOKEN_BUDGET = 1024  # batch * length per request, so the file and the replay stay small


def check_records_option(records: int | None) -> None:
    if records is not None and not 1 <= records <= WARMUP_MAX_RECORDS:
        raise ExportError(f"--warmup-records {records}: must be between 1 and {WARMUP_MAX_RECORDS} "
                          f"(TF Serving reads at most {WARMUP_MAX_RECORDS}); --no-warmup writes none")


def shapes(max_length: int) -> list[tuple[int, int]]:
    """(batch, tokens) pairs, smallest first, within TOKEN_BUDGET (the smallest batch always at full length)."""
    lengths = sorted({min(n, max_length) for n in SEQUENCE_LENGTHS + (max_length,)})
    grid = [(b, n) for b in BATCH_SIZES for n in lengths if b * n <= TOKEN_BUDGET or b == BATCH_SIZES[0]]
    return sorted(grid, key=lambda s: (s[0] * s[1], s[0]))


def _words(vocabulary: Path | list[str]) -> dict[str, int]:
    """Plain lower-case ASCII words of the vocabulary and their ids.

    `vocabulary` is a WordPiece vocab.txt or the tokenizer's id -> token list.
    Byte-level BPE and SentencePiece spell a word after a space with a marker
    (`Ġword`, `▁word`): those entries are the words, so that a text of them
    tokenizes to one token per word.
    """
    if not isinstance(vocabulary, list):
        vocabulary = Path(vocabulary).read_text(encoding="utf-8").split("\n")
    plain = lambda w: w.isascii() and w.isalpha() and w.islower()  # noqa: E731
    words = {w[1:]: i for i, w in enumerate(vocabulary) if w[:1] in ("Ġ", "▁") and plain(w[1:])}
    if not words:
        words = {w: i for i, w in enumerate(vocabulary) if plain(w)}
    if not words:
        raise ExportError("no plain words in the vocabulary to build warmup requests from")
    return words


def _inputs(spec: dict, batch: int, length: int, words: list[str], ids: dict[str, int]) -> dict[str, np.ndarray]:
    """A request's inputs for one signature, `length` tokens per row special tokens included."""
    rng = np.random.default_rng(batch * 1000 + length)
    inputs = {}
    strings = [n for n, info in spec["inputs"].items() if info["dtype"] == "string"]
    pair = len(strings) == 2  # text/text_pair, question/context
    for name, info in spec["inputs"].items():
        if info["dtype"] == "string":
            n_words = max(0, length - (3 if pair else 2))
            share = n_words // 2 if pair else n_words
            count = share if name == strings[0] or not pair else n_words - share
            rows = [" ".join(words[(r * 7 + i) % len(words)] for i in range(count)) for r in range(batch)]
            inputs[name] = np.array([r.encode() for r in rows], dtype=object)
        elif name == "input_ids":
            rows = [[ids[words[(r * 7 + i) % len(words)]] for i in range(length)] for r in range(batch)]
            inputs[name] = np.array(rows, dtype=info["dtype"])
        elif name in ("attention_mask", "token_type_ids"):
            fill = 1 if name == "attention_mask" else 0
            inputs[name] = np.full((batch, length), fill, dtype=info["dtype"])
        elif name == "inputs_embeds":
            hidden = info["shape"][-1]
            inputs[name] = (rng.standard_normal((batch, length, hidden)) * 0.02).astype(np.float32)
        else:
            raise ExportError(f"warmup: signature input {name!r} ({info['dtype']}) has no request builder")
    return inputs


def warmup_requests(model_name: str, signatures: dict[str, dict], vocabulary: Path | list[str], max_length: int,
                    records: int | None = None) -> list:
    """PredictionLog protos: every signature at every shape (round robin), cycled or cut to `records`."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    ids = _words(vocabulary)
    words = list(ids)
    names = sorted(signatures, key=lambda n: (n != DEFAULT_SIGNATURE, n))
    plan = [(name, shape) for shape in shapes(max_length) for name in names]
    total = len(plan) if records is None else records
    logs = []
    for i in range(min(total, WARMUP_MAX_RECORDS)):
        name, (batch, length) = plan[i % len(plan)]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        for key, value in _inputs(signatures[name], batch, length, words, ids).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: Path, model_name: str, signatures: dict[str, dict], vocabulary: Path | list[str],
                 max_length: int, records: int | None = None) -> dict:
    """Write the warmup file into a SavedModel version directory; returns what the model card says."""
    import tensorflow as tf

    logs = warmup_requests(model_name, signatures, vocabulary, max_length, records)
    path = Path(version_dir) / WARMUP_DIR / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    seen = {}
    for log in logs:
        request = log.predict_log.request
        shape = list(next(iter(request.inputs.values())).tensor_shape.dim)
        seen.setdefault(request.model_spec.signature_name, set()).add(
            (shape[0].size, _length(request)))
    return {"file": f"{WARMUP_DIR}/{WARMUP_FILE}", "records": len(logs), "bytes": path.stat().st_size,
            "shapes": {k: sorted(v) for k, v in seen.items()}}


def _length(request) -> int:
    """Tokens per row of a request we built (string inputs: words + special tokens)."""
    for key in ("input_ids", "inputs_embeds", "attention_mask"):
        if key in request.inputs:
            return request.inputs[key].tensor_shape.dim[1].size
    import tensorflow as tf

    texts = [tf.make_ndarray(v) for v in request.inputs.values() if v.dtype == tf.string.as_datatype_enum]
    words = sum(len(t[0].decode().split()) for t in texts)
    return words + 1 + len(texts)


def read_warmup(version_dir: Path) -> list:
    """The PredictionLog records of a version directory's warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / WARMUP_DIR / WARMUP_FILE
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def replay(session, logs: list, per_signature: int = 1) -> int:
    """Run the first `per_signature` records of each signature on a loaded SavedModel (a ServingSession),
    as TF Serving does at load time; raises VerificationError naming the record that fails.
    Returns how many ran."""
    import tensorflow as tf

    done: dict[str, int] = {}
    for i, log in enumerate(logs):
        request = log.predict_log.request
        name = request.model_spec.signature_name
        if done.get(name, 0) >= per_signature:
            continue
        try:
            session.run(name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except (KeyError, TypeError, ValueError, tf.errors.OpError) as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VerificationError(f"warmup record {i} (signature {name!r}) fails on the SavedModel, so TF "
                                    f"Serving would refuse to load it: {why}") from exc
        done[name] = done.get(name, 0) + 1
    return sum(done.values())
