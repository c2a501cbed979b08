# Two commands do all the set-up: `make demo` and `make test`. `make setup` is idempotent and quick
# once done (it reinstalls only when pyproject.toml or requirements.lock changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup system-deps lock demo lint test bench clean

setup: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

# The exact versions come from requirements.lock (made by `make lock`), used as constraints.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	@touch $(STAMP)

# Remakes requirements.lock from pyproject.toml after a dependency change. Pins that still fit
# are kept; `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed versions.
# torch stays the CPU build (2.13.0+cpu, from the machine's wheel folder): no nvidia-* packages.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m piptools --version >/dev/null 2>&1 || $(PY) -m pip install -q "pip-tools>=7.4"
	$(PY) -m piptools compile -q --extra test --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml
	@! grep -q "^nvidia-" $(LOCK) || { echo "$(LOCK) pins nvidia-* (a CUDA torch): want the CPU build" >&2; exit 1; }

demo: setup
	$(VENV)/bin/storypipe demo

# The import layers first (ARCHITECTURE.md; about 10 s), then the tests.
lint: setup
	PY=$(PY) scripts/lint-imports.sh

test: setup lint
	$(PY) -m pytest -q --durations=25 --numprocesses=auto --dist=loadfile

bench: setup
	$(PY) bench/run_vs_whisper.py

clean:
	rm -rf storypipe-demo .pytest_cache
