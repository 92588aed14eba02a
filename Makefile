# Two commands do all the set-up: `make demo` and `make test`. Each bootstraps uv into .tools/
# (from PyPI, pinned) and the project's .venv from uv.lock, so a machine needs only Python, git, make.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
WAREHOUSE := warehouse/meterhouse.duckdb
THROUGH ?= 2026-11-14
export UV_PROJECT_ENVIRONMENT := $(VENV)
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo test test-spark ui install install-spark clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as in many containers),
# every process would otherwise compile dagster, dbt and polars from source again (seconds for each
# `meterhouse run` and each dbt call; the test suite makes hundreds).
# (--inexact: an environment with the `spark` extra keeps it)
$(VENV)/bin/meterhouse: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --inexact --compile-bytecode --python $(PYTHON)
	touch $@

install: $(VENV)/bin/meterhouse

# The optional extra `spark` (pyspark, dbt-spark) for `--engine spark`; the test suite uses it.
$(VENV)/.spark-installed: $(VENV)/bin/meterhouse uv.lock pyproject.toml
	$(UV) sync --frozen --inexact --compile-bytecode --extra spark --python $(PYTHON)
	touch $@

install-spark: $(VENV)/.spark-installed

## Bill the bundled Mistral example through the real pipeline into an embedded DuckDB file (one line
## per step; Dagster's and dbt's logs in $(WAREHOUSE).log), then print its invoices, usage and wallets.
demo: install
	mkdir -p warehouse && rm -f $(WAREHOUSE) $(WAREHOUSE).log
	$(VENV)/bin/meterhouse run --catalog seeds/mistral/catalog --events seeds/mistral/events \
		--warehouse $(WAREHOUSE) --out warehouse/out --through $(THROUGH)
	@echo
	$(VENV)/bin/python -m dagster_project.summary $(WAREHOUSE) warehouse/out

## Run the whole test suite (unit, dbt, Dagster and end-to-end), on one worker per core (at most 4;
## TEST_WORKERS=0 runs it in this process, one test after another).
TEST_WORKERS ?= auto
test: install install-spark
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

## Only the tests that run the usage models on Spark, on workers as `make test`; fails (instead of
## skipping) without Java.
test-spark: install install-spark
	@command -v java >/dev/null || { echo "make test-spark: no Java runtime on PATH (Spark 4 needs Java 17+)"; exit 1; }
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 tests/e2e/test_spark_engine.py \
		tests/e2e/test_spark_incremental.py tests/unit/test_spark_exchange.py

## Open the Dagster UI on the same example (http://127.0.0.1:3000).
ui: install
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf warehouse dbt_project/target .dagster_home
