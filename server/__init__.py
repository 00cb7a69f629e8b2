"""A TF-Serving-compatible model server in Python (`python -m server`).

Same flags, REST and gRPC APIs, config files and behaviour as
`tensorflow_model_server`; see README "Server". Importing this package is
cheap (no TensorFlow): it exposes the process helper, the flag parser and the
one SavedModel loader (which imports TensorFlow when called).

>>> from server import ServerProcess
>>> with ServerProcess(["--model_name=m", "--model_base_path=/models/m"]) as srv:   # doctest: +SKIP
...     print(srv.rest_url, srv.grpc_target)
"""
from ._flags import FlagError, Options, parse_flags
from ._process import ServerProcess, free_port
from ._saved_model import LoadedSavedModel, SessionOptions, cpu_bf16_flags, load_saved_model

__all__ = ["ServerProcess", "free_port", "parse_flags", "Options", "FlagError",
           "SessionOptions", "LoadedSavedModel", "load_saved_model", "cpu_bf16_flags"]
