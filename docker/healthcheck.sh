#!/usr/bin/env bash
# Healthy (exit 0) only when every model is AVAILABLE on the REST API.
#
# The tensorflow/serving image has neither curl nor wget, so this speaks HTTP
# over bash's /dev/tcp. Models: the arguments, else every `name:` in
# $MODEL_CONFIG_FILE (default /etc/tfserving/models.config), else $MODEL_NAME.
# Used by the image's HEALTHCHECK, compose's healthcheck and the k8s
# readiness probe.
set -u

host=${HEALTHCHECK_HOST:-127.0.0.1}
port=${REST_API_PORT:-8501}
config=${MODEL_CONFIG_FILE:-/etc/tfserving/models.config}
limit=${HEALTHCHECK_TIMEOUT:-4}

models=("$@")
if [ ${#models[@]} -eq 0 ] && [ -r "$config" ]; then
  while IFS= read -r line; do
    if [[ $line =~ ^[[:space:]]*name:[[:space:]]*\"([^\"]+)\" ]]; then
      models+=("${BASH_REMATCH[1]}")
    fi
  done < "$config"
fi
if [ ${#models[@]} -eq 0 ] && [ -n "${MODEL_NAME:-}" ]; then
  models=("$MODEL_NAME")
fi
if [ ${#models[@]} -eq 0 ]; then
  echo "healthcheck: no model to check (give names, MODEL_CONFIG_FILE or MODEL_NAME)" >&2
  exit 1
fi

status() {  # GET /v1/models/$1 and print the response
  # shellcheck disable=SC2016  # the inner script expands its own $0..$2
  timeout "$limit" bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /v1/models/%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$2" "$0" "$1" >&3
    cat <&3' "$host" "$port" "$1" 2>/dev/null
}

for model in "${models[@]}"; do
  response=$(status "$model")
  if [[ ! $response =~ ^HTTP/1\.[01]\ 200 ]]; then
    echo "healthcheck: $model: no 200 answer from $host:$port" >&2
    exit 1
  fi
  if [[ ! $response =~ \"state\"[[:space:]]*:[[:space:]]*\"AVAILABLE\" ]]; then
    echo "healthcheck: $model: no version AVAILABLE" >&2
    exit 1
  fi
done
echo "healthcheck: AVAILABLE: ${models[*]}"
