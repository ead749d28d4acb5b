# The two commands: `make demo` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-complete

export ANNY_CACHE_DIR := $(CURDIR)/.cache/anny
export WARP_CACHE_PATH := $(CURDIR)/.cache/warp
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: setup demo test test-fast harden faults bench bench-scale bench-checks lint format ui dvc-yaml clean

setup: $(STAMP)

# Pipeline venv (locked versions; torch is the CPU wheel) + a separate DVC tool venv
# (DVC pins antlr4 4.9, Dagster needs 4.13) + a warm anny cache.
$(STAMP): pyproject.toml requirements/lock.txt requirements/dvc-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/lock.txt -e '.[dev]'
	test -x .venv-dvc/bin/python || $(PYTHON) -m venv .venv-dvc
	.venv-dvc/bin/pip install -q --disable-pip-version-check -r requirements/dvc-lock.txt
	$(PY) -c "from orchestration.env import ensure_dagster_home; ensure_dagster_home()"
	$(PY) scripts/warmup.py
	touch $(STAMP)

# Exit 0 when every asset materialized and every data contract (ERROR check) holds; the learning
# targets (WARN checks) that were missed are listed last, by `status`.
demo: setup
	$(PY) -m orchestration.cli materialize --all --workers 2
	scripts/dvc status
	$(PY) -m orchestration.cli status

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

harden: setup
	$(PY) -m pytest tests/hardening -q

# SIGKILL at 25 seeded writes of each of four assets' write paths (make test runs 5 each), and the
# 20 kills of a training checkpoint save; prints the kills survived.
faults: setup
	PD_FAULT_KILLS=25 $(PY) -m pytest -q -p no:randomly tests/hardening/test_faults.py \
		"tests/dreamer_core/test_resume.py::test_a_save_killed_at_any_point_leaves_the_previous_state_or_the_new_one"

bench: setup
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/lock.txt -e '.[dev,bench]'
	$(PY) scripts/bench.py

# Every asset in its own process at N and 8N samples: peak RSS of its process tree, seconds per unit.
bench-scale: setup
	$(PY) scripts/bench_scale.py

bench-checks: setup
	$(PY) scripts/bench_checks.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

ui: setup
	$(PY) -m orchestration.ui

dvc-yaml: setup
	$(PY) -m orchestration.cli dvc-yaml

# Every asset output (the outs of dvc.yaml, which is generated from the asset graph), the Dagster and
# MLflow stores and the local DVC remote. DVC's cache (.dvc/cache) stays: `scripts/dvc checkout` restores.
clean:
	rm -rf $$(sed -n 's|^    - \(data/[a-z0-9_]*\):\{0,1\}$$|\1|p' dvc.yaml | sort -u) data/.locks data/.*.staging data/.*.old dagster_home mlflow dvc-remote
