"""A TF-Serving-compatible model server in Python (`python -m server`).

Same flags, REST and gRPC APIs, config files and behaviour as
`tensorflow_model_server`; see README "Server". Importing this package is
cheap (no TensorFlow): it only exposes the process helper and the flag parser.

>>> from server import ServerProcess
>>> with ServerProcess(["--model_name=m", "--model_base_path=/models/m"]) as srv:   # doctest: +SKIP
...     print(srv.rest_url, srv.grpc_target)
"""
from ._flags import FlagError, Options, parse_flags
from ._process import ServerProcess, free_port

__all__ = ["ServerProcess", "free_port", "parse_flags", "Options", "FlagError"]
