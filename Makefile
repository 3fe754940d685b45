# Hive's entry points. CI (.ci/run) runs `make test`: the static checks (ruff, the import
# contracts, mypy --strict), then the whole test suite; any failure fails the target.
# Targets that need the virtualenv or the servers go through scripts/bootstrap.sh, which is
# idempotent and quiet when there is nothing to do.

VENV := .venv
BIN := $(VENV)/bin
# Not PYTHON: that one names the interpreter bootstrap.sh builds the venv with
# (PYTHON=/path/to/python3.11 make demo), and make would export ours over it.
VENV_PYTHON := $(BIN)/python
# Extra pytest arguments: make test PYTEST_ARGS="tests/unit -x"
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Most tests wait on real workers rather than compute, so
# more processes than cores pays; each has its own database and Redis db index (tests/conftest.py).
TEST_PROCESSES ?= 4
# worksteal, not load: an idle process takes queued tests from a busy one, so a few long
# fault tests near the end no longer hold the run while the other processes wait. Under
# load, the last 12 % of a run's tests took 13 of its 20 minutes.
TEST_DIST ?= worksteal

.PHONY: bootstrap venv demo test lint typecheck check bench services-stop clean
# The checks run before the tests, even under make -j.
.NOTPARALLEL:

bootstrap:
	@bash scripts/bootstrap.sh

# The virtualenv alone, for targets that need no servers.
venv:
	@bash scripts/bootstrap.sh --no-services

# The demo runs the product as shipped: the test-only agents are taken out of the venv.
demo:
	@bash scripts/bootstrap.sh --no-test-agents
	$(VENV_PYTHON) scripts/demo.py

# pytest's status passes straight through: 5 ("no tests collected") fails the target too.
# Only the tests install the test-only agents (tests/agents: crash, hang).
# The tests start thousands of `hive` processes: with PYTHONDONTWRITEBYTECODE set (some
# shells set it) each would compile Hive's modules from source again, ~0.1 s apiece.
test: export PYTHONDONTWRITEBYTECODE :=
test: lint typecheck
	@bash scripts/bootstrap.sh --test-agents
	$(BIN)/pytest -p no:cacheprovider -n $(TEST_PROCESSES) --dist $(TEST_DIST) --durations=20 $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

# Kept for habit: `test` already runs every check.
check: test

bench: bootstrap
	$(VENV_PYTHON) -m bench.throughput

services-stop:
	@if [ -x $(VENV_PYTHON) ]; then $(VENV_PYTHON) scripts/services.py stop; fi

# Keeps .venv; rm -rf .venv for a from-scratch set-up. `services.py clean` also deletes a
# throwaway cluster kept under the temp dir (when the postgres user cannot reach .hive/).
clean:
	@if [ -x $(VENV_PYTHON) ]; then $(VENV_PYTHON) scripts/services.py clean; fi
	rm -rf .hive build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +
