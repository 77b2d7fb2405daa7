# openimagine: `make serve` runs the server on the embedded default, `make test` runs the suite.
# Both start with `make install`, which is idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch. Installing it before anything that depends on torch keeps pip from
# pulling a multi-GB CUDA build. On a GPU host, install your CUDA torch first and set TORCH_SPEC=.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8765
DATA_DIR ?= ./data
SDK_ENVS := .venv-sdk/runware-legacy .venv-sdk/runware-sdk

.PHONY: install serve test lint typecheck deploy-check sdk-envs tools bench clean

install: $(BIN)/openimagine

$(BIN)/openimagine: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	test -z "$(TORCH_SPEC)" || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[diffusers,postgres]" --group dev
	touch $@

serve: install
	$(BIN)/openimagine serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The two official Runware Python SDKs install under the same module name (`runware`),
# so each gets its own environment; the end-to-end tests drive them as subprocesses.
sdk-envs: .venv-sdk/runware-legacy/.ok .venv-sdk/runware-sdk/.ok .venv-sdk/xai-sdk/.ok \
	.venv-sdk/node-ai-xai/.ok

.venv-sdk/runware-legacy/.ok:
	$(PYTHON) -m venv .venv-sdk/runware-legacy
	.venv-sdk/runware-legacy/bin/python -m pip install -q "runware>=0.5,<0.6"
	touch $@

.venv-sdk/runware-sdk/.ok:
	$(PYTHON) -m venv .venv-sdk/runware-sdk
	.venv-sdk/runware-sdk/bin/python -m pip install -q "runware-sdk>=1,<2"
	touch $@

# xAI's Python SDK (gRPC) and the Vercel AI SDK's xAI provider (REST, under Node), each in an
# environment of its own, for the xAI door's end-to-end tests.
.venv-sdk/xai-sdk/.ok:
	$(PYTHON) -m venv .venv-sdk/xai-sdk
	.venv-sdk/xai-sdk/bin/python -m pip install -q "xai-sdk>=1.21,<2"
	touch $@

# The lock pins the AI SDK's whole tree; to move it, edit package.json, then run
# `npm install --package-lock-only` in tests/e2e/sdk/node/ and commit both files. (The
# packages ask for Node >= 22; npm only warns, and the tests pass on Node 20 as well.)
.venv-sdk/node-ai-xai/.ok: tests/e2e/sdk/node/package.json tests/e2e/sdk/node/package-lock.json
	mkdir -p .venv-sdk/node-ai-xai
	cp tests/e2e/sdk/node/package.json tests/e2e/sdk/node/package-lock.json .venv-sdk/node-ai-xai/
	cd .venv-sdk/node-ai-xai && npm ci --silent --no-audit --no-fund
	touch $@

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# deploy/, offline: the compose files against the Compose specification, the Kubernetes
# manifests against the API schemas, and both against Settings (deploy/check.py).
deploy-check: install
	$(BIN)/python deploy/check.py

# The tests check every file with the FFmpeg command-line tools, independently of PyAV, and
# drive the playground in the system Chromium (/usr/bin/chromium, never `playwright install`);
# the benchmarks load the API with wrk. On Debian/Ubuntu as root they are installed here.
tools:
	@command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null && command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg wrk >/dev/null; \
	  else echo "please install ffmpeg and wrk (e.g. sudo apt-get install ffmpeg wrk)"; exit 1; fi; }
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "please install chromium (e.g. sudo apt-get install chromium)"; exit 1; fi; }

test: install sdk-envs tools lint typecheck
	$(BIN)/python -m pytest

bench: install tools
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .venv-sdk .pytest_cache .mypy_cache .ruff_cache
