"""The one way this project loads a SavedModel: TF1 loader, own graph and session.

TF Serving's SavedModelBundle imports the tagged meta graph (`serve`) into a
fresh graph, restores the variables, runs the init op (tables, assets) and
then runs requests as `Session::Run` over the signatures' tensor names. The
server (`_servable.py`), the export's reload checks (`export/_serving_session.py`)
and the benchmark's in-process ceiling (`bench/_inprocess.py`) all load
through `load_saved_model`, so a session option is set here, once.

TensorFlow is imported on first use: importing this module is cheap.

>>> loaded = load_saved_model("/models/m/1", options=SessionOptions(intra_op_threads=2))  # doctest: +SKIP
>>> sorted(loaded.signature_defs)                                                         # doctest: +SKIP
['serving_default']
>>> SessionOptions(inter_op_threads=1)
SessionOptions(intra_op_threads=0, inter_op_threads=1, allow_soft_placement=True, mixed_precision='')
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Sequence

import protocol

__all__ = ["SessionOptions", "LoadedSavedModel", "load_saved_model", "BF16_CPU_FLAGS", "cpu_bf16_flags"]

log = logging.getLogger("server")

#: /proc/cpuinfo flags of the x86 instructions oneDNN runs bfloat16 matmuls with
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class SessionOptions:
    """The session settings a SavedModel is served with (0 threads = TensorFlow's choice).

    A new setting is a field here and a line in `config_proto()`; every loader
    of the project picks it up.
    """
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    allow_soft_placement: bool = True
    # tensorflow_model_server's --mixed_precision: "bfloat16" turns on grappler's
    # auto_mixed_precision_onednn_bfloat16 rewrite (saved_model_bundle_factory.cc);
    # any other non-empty value is logged as unsupported and ignored, as there.
    mixed_precision: str = ""

    def config_proto(self):
        """The `tf.compat.v1.ConfigProto` for these options."""
        import tensorflow as tf
        from tensorflow.core.protobuf import rewriter_config_pb2

        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.intra_op_threads,
                                          inter_op_parallelism_threads=self.inter_op_threads,
                                          allow_soft_placement=self.allow_soft_placement)
        if self.mixed_precision == "bfloat16":
            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
                rewriter_config_pb2.RewriterConfig.ON
        return config

    def log_mixed_precision(self) -> None:
        """What TF Serving logs for --mixed_precision at each load, and whether this CPU has bf16."""
        if not self.mixed_precision:
            return
        if self.mixed_precision != "bfloat16":
            log.warning("%s auto mixed precision is not supported. Valid option: bfloat16", self.mixed_precision)
            return
        log.info("Running inference with bfloat16 auto mixed precision")
        if not cpu_bf16_flags():
            log.warning("--mixed_precision=bfloat16: this CPU has none of the bfloat16 instructions %s "
                        "(/proc/cpuinfo), so grappler's oneDNN bfloat16 rewrite leaves the graph in float32 "
                        "(no speed-up, no accuracy cost)", "/".join(BF16_CPU_FLAGS))


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """Which of `BF16_CPU_FLAGS` the CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return ()
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


@dataclasses.dataclass
class LoadedSavedModel:
    """A loaded meta graph: its session (graph finalized) and its SignatureDefs."""
    session: object
    meta_graph_def: object

    @property
    def graph(self):
        return self.session.graph

    @property
    def signature_defs(self) -> dict:
        return dict(self.meta_graph_def.signature_def)

    def close(self) -> None:
        self.session.close()


def load_saved_model(path, tags: Sequence[str] = (protocol.SERVE_TAG,),
                     options: SessionOptions = SessionOptions()) -> LoadedSavedModel:
    """Load the meta graph tagged `tags` of the SavedModel at `path` (a version directory)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tf-text ops exported tokenizers use)
    from tensorflow.python.util import deprecation

    options.log_mixed_precision()
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=options.config_proto())
    try:
        # The TF1 loader is deprecated for TF2 programs, but it is exactly TF Serving's path.
        with graph.as_default(), deprecation.silence():
            meta = tf.compat.v1.saved_model.loader.load(session, list(tags), str(path))
    except BaseException:
        session.close()
        raise
    graph.finalize()  # nothing may add ops at serving time
    return LoadedSavedModel(session, meta)
