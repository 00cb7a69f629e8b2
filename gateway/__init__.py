"""An OpenAI-compatible embeddings API in front of TF Serving (or `python -m server`).

Applications written for OpenAI's `/v1/embeddings` (the `openai` package,
LangChain, LlamaIndex, vector-database tooling) get a served model's
embeddings without a code change: the gateway maps each request onto the
model's `text` signature over gRPC (`clients.AsyncGrpcClient`), splits long
input lists into batches (order kept), and counts usage in the model's own
tokens (its `token_count` signature).

    python -m gateway --upstream localhost:8500 --port 8000 --model minilm

>>> from openai import OpenAI                                                   # doctest: +SKIP
>>> client = OpenAI(base_url="http://localhost:8000/v1", api_key="unused")      # doctest: +SKIP
>>> client.embeddings.create(model="minilm", input=["hello", "world"]).data[0].embedding[:2]  # doctest: +SKIP
[-0.0344, 0.0310]
"""
from gateway._app import Gateway, GatewayConfig
from gateway._cli import main, parse_args
from gateway._embeddings import MAX_INPUTS, EmbeddingRequest
from gateway._errors import OpenAIError
from gateway._models import ModelCatalog, ModelInfo, parse_routes
from gateway._process import GatewayProcess

__all__ = [
    "Gateway",
    "GatewayConfig",
    "main",
    "parse_args",
    "EmbeddingRequest",
    "MAX_INPUTS",
    "OpenAIError",
    "ModelCatalog",
    "ModelInfo",
    "parse_routes",
    "GatewayProcess",
]
