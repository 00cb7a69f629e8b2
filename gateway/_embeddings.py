"""`POST /v1/embeddings`: the request as OpenAI defines it, and the response.

>>> req = EmbeddingRequest.parse({"model": "minilm", "input": "hello", "encoding_format": "base64"})
>>> req.texts, req.encoding_format
(['hello'], 'base64')
>>> vectors = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)
>>> truncate(vectors, 1, "minilm").tolist()
[[1.0]]
"""
from __future__ import annotations

import base64
import dataclasses

import numpy as np

from gateway._errors import OpenAIError

__all__ = ["EmbeddingRequest", "MAX_INPUTS", "ENCODING_FORMATS", "check_dimensions", "truncate", "embedding_response"]

#: OpenAI's limit of inputs per request
MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")
#: how far from 1 a vector's norm may be for the model to count as normalised (float32 rounding)
_UNIT_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    texts: list[str]
    encoding_format: str = "float"
    dimensions: int | None = None

    @classmethod
    def parse(cls, body) -> "EmbeddingRequest":
        """Validate a decoded JSON body as OpenAI does; raises `OpenAIError` (400)."""
        if not isinstance(body, dict):
            raise OpenAIError.invalid("the request body must be a JSON object with `model` and `input`")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise OpenAIError.invalid("you must provide a model parameter (a model id from GET /v1/models)",
                                      param="model")
        return cls(model=model, texts=_texts(body.get("input")),
                   encoding_format=_encoding_format(body.get("encoding_format")),
                   dimensions=_dimensions(body.get("dimensions")))


def _texts(value) -> list[str]:
    if value is None:
        raise OpenAIError.invalid("you must provide an `input`: a string or a list of strings", param="input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise OpenAIError.invalid(f"`input` must be a string or a list of strings, got {type(value).__name__}",
                                  param="input")
    if not texts:
        raise OpenAIError.invalid("`input` is an empty list: give at least one string", param="input")
    if len(texts) > MAX_INPUTS:
        raise OpenAIError.invalid(f"`input` has {len(texts)} items; at most {MAX_INPUTS} per request "
                                  "(split the list, as for OpenAI)", param="input")
    for i, text in enumerate(texts):
        if isinstance(text, str):
            if not text:
                where = "`input`" if isinstance(value, str) else f"`input[{i}]`"
                raise OpenAIError.invalid(f"{where} is an empty string: every input must have text",
                                          param="input")
            continue
        if isinstance(text, int) or (isinstance(text, list) and all(isinstance(t, int) for t in text)):
            # Token ids would be ids of OpenAI's tokenizer (tiktoken), not of the served model's vocabulary.
            raise OpenAIError.invalid("token arrays are not supported: send text (a string or a list of "
                                      "strings); the model tokenizes it itself", param="input",
                                      code="unsupported_input")
        raise OpenAIError.invalid(f"`input[{i}]` is {type(text).__name__}; every input must be a string",
                                  param="input")
    return texts


def _encoding_format(value) -> str:
    if value is None:
        return "float"
    if value not in ENCODING_FORMATS:
        raise OpenAIError.invalid(f"`encoding_format` must be one of {list(ENCODING_FORMATS)}, got {value!r}",
                                  param="encoding_format")
    return value


def _dimensions(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OpenAIError.invalid(f"`dimensions` must be a positive integer, got {value!r}", param="dimensions")
    return value


def check_dimensions(dimensions: int | None, size: int, model: str) -> None:
    """Refuse `dimensions` over the model's embedding size (before anything is computed)."""
    if dimensions is not None and dimensions > size:
        raise OpenAIError.invalid(f"`dimensions` is {dimensions} but model `{model}` returns {size}; "
                                  f"ask for {size} or fewer", param="dimensions")


def truncate(vectors: np.ndarray, dimensions: int | None, model: str) -> np.ndarray:
    """The first `dimensions` components, re-normalised to unit length (OpenAI's v3 models do the same).

    Only meaningful for a model whose embeddings are unit vectors (exported
    with normalisation on, the default): anything else is refused.
    """
    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    check_dimensions(dimensions, vectors.shape[1], model)
    norms = np.linalg.norm(vectors, axis=1)
    if not np.all(np.abs(norms - 1.0) <= _UNIT_TOLERANCE):
        raise OpenAIError.invalid(f"model `{model}` does not return normalised embeddings, so they cannot be "
                                  "shortened with `dimensions` (export it with normalisation on)",
                                  param="dimensions")
    head = vectors[:, :dimensions]
    return head / np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)


def embedding_response(model: str, vectors: np.ndarray, encoding_format: str, prompt_tokens: int) -> dict:
    """OpenAI's `CreateEmbeddingResponse`; float vectors stay numpy arrays (orjson writes them)."""
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        # OpenAI's base64 is the raw little-endian float32 bytes of each vector.
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    else:
        rows = list(vectors)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
