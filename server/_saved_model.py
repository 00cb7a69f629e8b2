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
SessionOptions(intra_op_threads=0, inter_op_threads=1, allow_soft_placement=True)
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import protocol

__all__ = ["SessionOptions", "LoadedSavedModel", "load_saved_model"]


@dataclasses.dataclass(frozen=True)
class SessionOptions:
    """The session settings a SavedModel is served with (0 threads = TensorFlow's choice).

    A new setting is a field here and a line in `config_proto()`; every loader
    of the project picks it up.
    """
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    allow_soft_placement: bool = True

    def config_proto(self):
        """The `tf.compat.v1.ConfigProto` for these options."""
        import tensorflow as tf

        return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.intra_op_threads,
                                        inter_op_parallelism_threads=self.inter_op_threads,
                                        allow_soft_placement=self.allow_soft_placement)


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
