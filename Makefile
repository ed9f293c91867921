# `make run` and `make test` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
WORKERS ?= 1
# The browser tests drive Debian's Chromium (Playwright never downloads a browser of its own).
CHROMIUM := /usr/bin/chromium
# The clock-skew tests run a worker on a shifted clock with Debian's libfaketime (its `faketime`
# package brings the library the tests preload).
FAKETIME := /usr/bin/faketime
# The vanishing-database-host test puts a server of its own in a network namespace (iproute2's `ip`).
IPROUTE := /usr/bin/ip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Python keeps its compiled modules here (a machine's environment may say not to): the suite starts
# about a hundred API, worker and simulation processes, and each one would compile the project's
# modules again; pytest would rewrite the asserts of 326 modules again in every test process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test install install-dev browser faketime iproute bench soak lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The client (client/, the `qtq` command) is installed editable after the pins, so its dependencies
# are the pinned ones and a change to its code needs no reinstall; a change to its pyproject does.
INSTALL_CLIENT := $(PY) -m pip install --quiet -e './client[qiskit]'

$(VENV)/.installed: requirements.txt client/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(INSTALL_CLIENT)
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt client/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(INSTALL_CLIENT)
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

browser: $(CHROMIUM)

$(FAKETIME):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq faketime

faketime: $(FAKETIME)

$(IPROUTE):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iproute2

iproute: $(IPROUTE)

.env:
	cp .env.example .env

run: install .env
	WORKERS=$(WORKERS) PY=$(PY) scripts/run.sh

# The whole suite on SQLite; then, when TEST_DATABASE_URL names a PostgreSQL server, again on it
# (each run creates its own databases there and drops them).
# Test files run in TEST_PROCESSES parallel processes, in the order tests/conftest.py gives them
# (one file stays in one process, so its module-wide services are started once).
TEST_PROCESSES ?= 3
test: install-dev browser faketime iproute
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$TEST_DATABASE_URL) =="; \
		$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder --backend=postgres $(PYTEST_ARGS); \
	fi

# The same lint and type checks everywhere: ruff (lint and format) and mypy.
LINT_DIRS := api_server worker shared harness tests bench client
lint: install-dev
	$(PY) -m ruff check $(LINT_DIRS)
	$(PY) -m ruff format --check $(LINT_DIRS)
	$(PY) -m mypy $(LINT_DIRS)

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts

# The benchmark: huey (the peer) and wrk (the load generator) are installed for it alone.
WRK := /usr/bin/wrk
$(WRK):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk

$(VENV)/.installed-bench: requirements-bench.txt requirements-dev.txt requirements.txt client/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(INSTALL_CLIENT)
	touch $@

# Runs on SQLite and, when TEST_DATABASE_URL names a PostgreSQL server, on PostgreSQL too.
bench: $(VENV)/.installed-bench $(WRK)
	$(PY) -m bench.run

# A steady mixed load on a real API and two workers for SOAK_SECONDS (600 by default), then a verdict
# on memory, descriptors and exactly-once; not part of `make test`. docs/soak.md holds the last report.
SOAK_SECONDS ?= 600
soak: $(VENV)/.installed-bench
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m bench.soak
