# medallion-lakehouse: every target installs what it needs first (make setup is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
JARS   := .cache/jars
SETUP_STAMP := $(VENV)/.setup-stamp
JARS_STAMP  := $(JARS)/.stamp
KAFKA_JARS       := .cache/kafka-jars
KAFKA_JARS_STAMP := $(KAFKA_JARS)/.stamp
PG_BIN      := /usr/lib/postgresql/15/bin
# PyPI has pyspark as a source distribution only (~450 MB), and uv rebuilds it (~25 s, ~1 GB of
# cache) on every install, since it cannot revalidate its cached copy. It is built into a wheel
# once per machine, here, and found there by make setup and by the wheel test's fresh virtualenv
# (UV_FIND_LINKS).
PYSPARK     := $(shell sed -n 's/^pyspark==//p' requirements.lock)
WHEELHOUSE  := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/medallion-lakehouse/wheels
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup jars postgres chromium demo lab test lint bench lock wheel clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) $(JARS_STAMP) $(KAFKA_JARS_STAMP) postgres  ## create .venv, install pinned deps, cache JVM jars (Delta, Kafka), PostgreSQL

postgres:  ## PostgreSQL 15 from Debian's packages (the local Redshift stand-in)
	@test -x $(PG_BIN)/initdb || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 >/dev/null; }

chromium:  ## headless Chromium from Debian's packages (the tests open a run report in it)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Bytecode is compiled at install time: every notebook kernel, CLI and test process imports
# pyspark, pandas and Great Expectations, and without .pyc files (uv writes none by default, and
# PYTHONDONTWRITEBYTECODE stops Python writing them) each one compiles them again (GE: ~11 s).
$(SETUP_STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install -q uv==0.13.9
	@test -f $(WHEELHOUSE)/pyspark-$(PYSPARK)-py2.py3-none-any.whl || { \
	    $(VENV)/bin/pip wheel -q --no-deps -w $(WHEELHOUSE)/partial pyspark==$(PYSPARK) && \
	    mv $(WHEELHOUSE)/partial/pyspark-$(PYSPARK)-*.whl $(WHEELHOUSE)/; }
	$(UV) pip install -q -p $(PY) --compile-bytecode --find-links $(WHEELHOUSE) -r requirements.lock
	$(UV) pip install -q -p $(PY) --no-deps -e .
	$(PY) -m compileall -q -j 0 src >/dev/null
	@touch $@

$(JARS_STAMP): jvm/pom.xml jvm/localfs/pom.xml $(shell find jvm/localfs/src -name '*.java')
	@rm -rf $(JARS) && mkdir -p $(JARS)
	mvn -q -B -f jvm/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/$(JARS) -DincludeGroupIds=io.delta
	mvn -q -B -f jvm/localfs/pom.xml package
	cp .cache/localfs-build/medallion-localfs-*.jar $(JARS)/
	@touch $@

$(KAFKA_JARS_STAMP): jvm/kafka/pom.xml
	@rm -rf $(KAFKA_JARS) && mkdir -p $(KAFKA_JARS)
	mvn -q -B -f jvm/kafka/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(CURDIR)/$(KAFKA_JARS) -DincludeScope=runtime
	@touch $@

jars: $(JARS_STAMP) $(KAFKA_JARS_STAMP)  ## resolve the JVM jars (Delta, the Kafka broker) from Maven Central and build jvm/localfs, into .cache/

wheel: setup  ## build dist/medallion_lakehouse-*.whl: what a cluster installs (no Spark/Delta pins; config inside)
	$(UV) build --wheel -o dist

lock:  ## re-pin every dependency into requirements.lock (the package, its `local` extra and dev tools)
	$(UV) pip compile -q pyproject.toml --extra local --extra dev -p $(PY) -o requirements.lock

demo: setup  ## start the local stand-ins and run the pipeline end to end
	$(VENV)/bin/medallion demo

lab: setup  ## JupyterLab on notebooks/, every kernel attached to the warm Spark driver
	$(VENV)/bin/medallion lab

test: export UV_FIND_LINKS := $(WHEELHOUSE)
test: setup chromium  ## run the whole test suite against real Spark, Delta and papermill
	$(VENV)/bin/ruff check src tests benchmarks notebooks
	$(VENV)/bin/mypy src tests
	$(PY) -m pytest -n 2

lint: setup  ## ruff and mypy
	$(VENV)/bin/ruff check src tests benchmarks notebooks
	$(VENV)/bin/mypy src tests

bench: setup  ## a small day's build per task vs bare PySpark (BENCH_DAY_SCALE=1.0 BENCH_DAYS=2); runner overhead per task; lineage+MLflow overhead; DQ engine vs GE and DQ share per step; the whole build vs bare PySpark, an incremental day vs a rebuild, JVM peak memory (BENCH_SCALE=1.0)
	$(PY) -m benchmarks.small_day --scale $(or $(BENCH_DAY_SCALE),1.0) --days $(or $(BENCH_DAYS),2)
	$(PY) -m benchmarks.runner_overhead
	$(PY) -m benchmarks.observability_overhead
	# Millions of rows: Spark's compiled projections (FALLBACK), not the local default's interpreted ones.
	MEDALLION_SPARK_CODEGEN=FALLBACK $(PY) -m benchmarks.dq_engine --scale $(or $(BENCH_SCALE),1.0)
	MEDALLION_SPARK_CODEGEN=FALLBACK $(PY) -m benchmarks.at_scale --scale $(or $(BENCH_SCALE),1.0)

clean:  ## remove local state (keeps .venv and the jar cache)
	rm -rf .lakehouse runs
