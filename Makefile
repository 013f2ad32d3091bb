# reelrec: one virtualenv (.venv), every version pinned in constraints.txt.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export REELREC_HOME ?= $(CURDIR)/.reelrec

# `make run` knobs: the demo world and how many nights to run.
PRESET ?= small
START  ?= 2026-11-01
DAYS   ?= 7

.PHONY: setup browser run test test-fast lint bench clean ui stop

## setup: create .venv, install the pinned set, install DuckDB's delta extension, compile the top-k kernel,
## install chromium + chromium-driver for the UI browser test (idempotent)
setup: $(VENV)/.installed browser

## browser: Debian's chromium + chromium-driver (tests/test_ui_browser.py), with apt-get when missing; a no-op
## when both are there. Without apt-get (or root/sudo) it says so and the browser test skips, naming the reason.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "[setup] no apt-get here: install chromium and chromium-driver yourself (the UI browser test skips)"; \
	else \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get -o DPkg::Lock::Timeout=600 update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium chromium-driver \
	  || echo "[setup] apt-get could not install chromium chromium-driver (the UI browser test skips)"; \
	fi

$(VENV)/.installed: constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m reelrec.duckdb_delta
	$(BIN)/python -m models.topk  # compiles the top-k kernel into numba's cache once
	@touch $@

## run: set up, generate the demo world, run every night through the Airflow scheduler, print where to look
## (the stack it starts is stopped at the end; `make ui` brings the UI back on the same runs)
run: setup
	$(BIN)/reelrec demo --preset $(PRESET) --start $(START) --days $(DAYS)

## test: set up, then run the whole test suite (Spark, Delta, GX, Feast, Airflow; services tests need Postgres+Redis)
test: setup
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

## test-fast: every tier but `slow` and `services`: unit tests, and Spark, GX, Feast and torch on tiny data.
## No test in it takes over ~10 s: the 10 slowest are printed, and one that drifts past that gets `slow`.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not services" --durations=10 $(PYTEST_ARGS)

## lint: ruff (lint, Airflow rules included, and format) over the repo; mypy over every package
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy reelrec spark_jobs models feature_repo dags synthetic_world

## bench: run every benchmark one after another and write benchmarks/RESULTS.md (BENCH_ARGS=--quick: small sizes)
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

## ui: start (or reuse) the stack in the background and print the Airflow UI's address (runs of `make run` are there)
ui: setup
	$(BIN)/reelrec ui

## stop: stop every process that `reelrec run`, `reelrec ui` or `reelrec services up` started
stop:
	$(BIN)/reelrec stop

clean:
	-@test -x $(BIN)/reelrec && $(BIN)/reelrec stop
	rm -rf $(REELREC_HOME) .pytest_cache .mypy_cache .ruff_cache
