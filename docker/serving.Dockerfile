# syntax=docker/dockerfile:1
# TensorFlow Serving with this project's configs, a non-root user and a
# health check on model status. Build context: the repository root.
#
#   docker build -f docker/serving.Dockerfile -t tfserving-transformers/serving .
#   # GPU:             --build-arg TF_SERVING_VARIANT=-gpu
#   # models baked in: --build-arg MODELS=baked   (copies ./models into /models;
#   #                   the reproducible form of the `docker commit` recipe)
#
# TF_SERVING_VERSION must equal the tensorflow pin in pyproject.toml (the
# SavedModels are exported with that TensorFlow); tests check it.
ARG TF_SERVING_VERSION=2.20.0
ARG TF_SERVING_VARIANT=
ARG MODELS=none

FROM tensorflow/serving:${TF_SERVING_VERSION}${TF_SERVING_VARIANT} AS base

# Model stages: only the one MODELS names is built (BuildKit skips the other).
FROM base AS models-none
RUN mkdir -p /baked/models

FROM base AS models-baked
COPY models/ /baked/models/
# models/ holds model directories; drop stray files such as .gitkeep.
RUN find /baked/models -mindepth 1 -maxdepth 1 ! -type d -delete

# hadolint ignore=DL3006
FROM models-${MODELS} AS models

FROM base AS serving
ARG TF_SERVING_VERSION
ARG TF_SERVING_VARIANT
LABEL org.opencontainers.image.title="tfserving-transformers serving" \
      org.opencontainers.image.description="tensorflow/serving ${TF_SERVING_VERSION}${TF_SERVING_VARIANT} with batching, Prometheus metrics, warmup and a model-status health check" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 tfserving \
 && useradd --system --uid 10001 --gid tfserving --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin tfserving \
 && mkdir -p /etc/tfserving /models

COPY docker/config/models.config docker/config/batching.config \
     docker/config/batching.gpu.config docker/config/monitoring.config /etc/tfserving/
COPY --chmod=0755 docker/healthcheck.sh /usr/local/bin/tfs-healthcheck
COPY --from=models /baked/models/ /models/

ENV MODEL_BASE_PATH=/models \
    MODEL_CONFIG_FILE=/etc/tfserving/models.config \
    REST_API_PORT=8501

USER 10001:10001
EXPOSE 8500 8501

# Healthy only when every model in models.config reports AVAILABLE.
HEALTHCHECK --interval=15s --timeout=6s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/tfs-healthcheck"]

# The same flags compose.yaml passes (compose overrides CMD, not ENTRYPOINT).
ENTRYPOINT ["/usr/bin/tensorflow_model_server"]
CMD ["--port=8500", \
     "--rest_api_port=8501", \
     "--model_config_file=/etc/tfserving/models.config", \
     "--model_config_file_poll_wait_seconds=60", \
     "--file_system_poll_wait_seconds=10", \
     "--enable_batching=true", \
     "--batching_parameters_file=/etc/tfserving/batching.config", \
     "--monitoring_config_file=/etc/tfserving/monitoring.config", \
     "--enable_model_warmup=true", \
     "--rest_api_timeout_in_ms=30000"]
