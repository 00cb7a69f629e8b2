"""Which models the gateway serves, and what the model server says about them.

A route maps the id clients send (`model=...`) to a model on the model server.
Routes come from `--model NAME` / `--model ID=NAME` and from the `name:` of
every model in a TF Serving `--model-config-file` (models.config).

>>> parse_routes(["minilm", "text-embedding-3-small=minilm"])
{'minilm': 'minilm', 'text-embedding-3-small': 'minilm'}
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path

from clients import AsyncGrpcClient, ModelMetadata

__all__ = ["ModelInfo", "ModelCatalog", "parse_routes", "models_config_names",
           "TEXT_SIGNATURE", "TOKEN_COUNT_SIGNATURE"]

#: the export's strings-in signature; its `embedding` output is what the gateway returns
TEXT_SIGNATURE = "text"
EMBEDDING_OUTPUT = "embedding"
#: the export's tokenizer-only signature (`token_count` int32 [batch]); usage comes from it
TOKEN_COUNT_SIGNATURE = "token_count"

_NAME = re.compile(r'^\s*name\s*:\s*"([^"]+)"')


def parse_routes(specs: list[str]) -> dict[str, str]:
    """`NAME` or `ID=NAME` specs -> {id: upstream model name}."""
    routes: dict[str, str] = {}
    for spec in specs:
        model_id, _, upstream = spec.partition("=")
        model_id, upstream = model_id.strip(), (upstream or model_id).strip()
        if not model_id or not upstream:
            raise ValueError(f"--model {spec!r}: give NAME or ID=NAME (e.g. text-embedding-3-small=minilm)")
        if routes.get(model_id, upstream) != upstream:
            raise ValueError(f"--model {spec!r}: id {model_id!r} already routes to {routes[model_id]!r}")
        routes[model_id] = upstream
    return routes


def models_config_names(path: Path) -> list[str]:
    """The model names of a TF Serving model config file (text-format ModelServerConfig)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"--model-config-file {path}: cannot read it ({exc.strerror})") from exc
    names = [m.group(1) for line in text.splitlines() if (m := _NAME.match(line.split("#", 1)[0]))]
    if not names:
        raise ValueError(f"--model-config-file {path}: no `name: \"...\"` in it; is it a models.config "
                         "(model_config_list { config { name: ... } })?")
    return names


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the gateway needs of a served model, from its metadata."""

    upstream: str
    version: int | None
    dimensions: int | None          # the embedding size, None if the metadata does not say
    counts_tokens: bool             # has the `token_count` signature
    embedding: bool                 # has a `text` signature with an `embedding` output
    outputs: tuple[str, ...] = ()   # of the `text` signature (for the error when not an embedding model)

    @classmethod
    def from_metadata(cls, upstream: str, meta: ModelMetadata) -> "ModelInfo":
        text = meta.signatures.get(TEXT_SIGNATURE)
        outputs = tuple(sorted(text.outputs)) if text is not None else ()
        spec = text.outputs.get(EMBEDDING_OUTPUT) if text is not None else None
        dims = spec.shape[-1] if spec is not None and spec.shape else None
        return cls(upstream=upstream, version=meta.version, dimensions=dims,
                   counts_tokens=TOKEN_COUNT_SIGNATURE in meta.signatures,
                   embedding=spec is not None and "text" in text.inputs, outputs=outputs)


class ModelCatalog:
    """Routes plus a short-lived cache of each upstream model's metadata.

    The cache expires after `ttl` seconds, so a new version with other
    signatures is seen without restarting the gateway.
    """

    def __init__(self, client: AsyncGrpcClient, routes: dict[str, str], *, ttl: float = 30.0,
                 timeout: float = 10.0):
        self.client = client
        self.routes = dict(routes)
        self._ttl = ttl
        self._timeout = timeout
        self._cache: dict[str, tuple[float, ModelInfo]] = {}

    def upstream(self, model_id: str) -> str | None:
        return self.routes.get(model_id)

    async def info(self, upstream: str) -> ModelInfo:
        """The model's info; raises `clients.ServingError` (not found, unavailable, ...)."""
        now = time.monotonic()
        hit = self._cache.get(upstream)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        info = ModelInfo.from_metadata(upstream, await self.client.metadata(upstream, timeout=self._timeout))
        self._cache[upstream] = (now, info)
        return info

    def forget(self, upstream: str) -> None:
        self._cache.pop(upstream, None)

    async def all_info(self) -> dict[str, ModelInfo | Exception]:
        """{upstream name: info or the error}, every model asked at once."""
        names = sorted(set(self.routes.values()))
        found = await asyncio.gather(*(self.info(n) for n in names), return_exceptions=True)
        return dict(zip(names, found))
