# Two commands do all the set-up: `make demo` and `make test`. `make setup` is idempotent and quick
# once done (it reinstalls only when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup system-deps demo test bench clean

setup: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/storypipe demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run_vs_whisper.py

clean:
	rm -rf storypipe-demo .pytest_cache
