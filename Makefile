# flinkpulse — the Makefile's targets are the interface.
#   make setup   venv (.venv) + Maven jars (.flinkpulse/jars) + Mosquitto (Debian package); every
#                other target uses it
#   make demo    the whole pipeline on the embedded stack
#   make test    the whole test suite (unit + integration against real services)
#   make lint    ruff + mypy
#   make bench   benchmarks (bench/README.md)
#   make clean   stop the stack, remove state, venv and caches

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
FP     := $(VENV)/bin/flinkpulse
STATE  ?= .flinkpulse
JARS   := $(STATE)/jars
STAMP  := $(VENV)/.installed
# Superset has its own venv: its pins conflict with apache-flink's
SS_VENV  := .venv-superset
SS_STAMP := $(SS_VENV)/.installed

.PHONY: setup setup-parts setup-superset setup-mosquitto demo test test-unit lint fmt bench clean stack-up stack-down reliability-report

# the parts at once: the two venvs, the jars and the broker do not depend on each other (the
# Superset venv's 40 s then fit in the main venv's 70 s on a fresh clone)
setup:
	@$(MAKE) --no-print-directory -j4 setup-parts

setup-parts: $(STAMP) $(JARS)/.resolved $(SS_STAMP) setup-mosquitto
	@:

# the MQTT broker of the stack (component mqtt): Debian's package, installed when missing
setup-mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  command -v apt-get >/dev/null || { echo "Mosquitto is required (MQTT broker): install the mosquitto package"; exit 1; }; \
	  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq mosquitto || { apt-get update -qq && apt-get install -y -qq mosquitto; }; } >/dev/null 2>&1 \
	    || { echo "apt-get install mosquitto failed: run make setup as root, or install mosquitto"; exit 1; }; }

setup-superset: $(SS_STAMP)

$(SS_STAMP): deploy/superset/constraints.txt
	@test -x $(SS_VENV)/bin/python || $(PYTHON) -m venv $(SS_VENV)
	$(SS_VENV)/bin/python -m pip install -q --upgrade pip
	$(SS_VENV)/bin/python -m pip install -q -c deploy/superset/constraints.txt \
	  apache-superset==6.1.0 clickhouse-connect gunicorn rich cachetools
	@touch $@

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,notebook]'
	@touch $@

# the broker's classpath is exactly what the pom resolves: a jar an older pom left behind can
# shadow a class (log4j-slf4j2-impl next to log4j-slf4j-impl stopped Kafka from starting)
$(JARS)/.resolved: deploy/pom.xml
	@command -v mvn >/dev/null || { echo "Maven is required to fetch the jars (apt-get install maven)"; exit 1; }
	rm -rf $(JARS)/kafka
	mvn -q -B -f deploy/pom.xml -Djars.dir=$(abspath $(JARS)) process-resources
	@touch $@

demo: setup
	$(FP) demo

# every test, or only those given: `make test TESTS="tests/integration/test_x.py"`. pytest
# exits 5 when no test was collected (e.g. a -k filter): not a failure of the suite
TESTS ?= tests
test: setup
	$(PY) -m pytest $(TESTS) $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# docs/RELIABILITY.md from the rows the last test run recorded (test-artifacts/): a test run
# itself never rewrites a tracked file
reliability-report:
	$(PY) -m tests.reliability_report

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy flinkpulse udfs flink_jobs producers

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(FP) bench

stack-up: setup
	$(FP) stack up

stack-down:
	-$(FP) stack down

clean: stack-down
	rm -rf $(STATE) $(VENV) $(SS_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
