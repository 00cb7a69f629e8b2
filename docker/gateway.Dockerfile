# syntax=docker/dockerfile:1
# The OpenAI-compatible embeddings gateway: a slim Python with the client
# install and the [gateway] extra (grpcio, numpy, h11, orjson; no TensorFlow),
# in front of a model server's gRPC port. Build context: the repository root.
#
#   docker build -f docker/gateway.Dockerfile -t tfserving-transformers/gateway .
#   docker run --rm -p 8000:8000 tfserving-transformers/gateway --upstream HOST:8500 --model minilm
#
# Versions come from pyproject.toml (the one place they are pinned).
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/tfserving-transformers

# Only what the gateway imports: the protocol facts, the clients, the gateway
# (setup.py, where present, compiles the clients' gRPC messages at install time).
COPY pyproject.toml README.md setup.py* ./
COPY protocol/ protocol/
COPY clients/ clients/
COPY gateway/ gateway/
# The versions are pinned in pyproject.toml; hadolint cannot see them through ".[gateway]".
# hadolint ignore=DL3013
RUN pip install ".[gateway]" \
 && python -c "import gateway, importlib.util as u; assert u.find_spec('tensorflow') is None, 'TensorFlow in the gateway image'"

# The models it serves by default: every model of the serving image's models.config.
COPY docker/config/models.config /etc/tfserving/models.config

USER 65534:65534
EXPOSE 8000

# Healthy when every model it routes to is AVAILABLE on the model server (GET /health answers 200).
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=5)"]

ENTRYPOINT ["python", "-m", "gateway"]
CMD ["--host", "0.0.0.0", "--port", "8000", "--upstream", "serving:8500", \
     "--model-config-file", "/etc/tfserving/models.config"]
