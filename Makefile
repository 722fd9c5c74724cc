# make run   - set up .venv, then run the demo: a plain TCP chat server behind websockify
# make test  - set up .venv with the exact versions in constraints.txt, then run every test
# make check - lint (ruff), types (mypy) and the unit tests alone (tests/unit): no
#              sockets, no servers, no system package beyond a C compiler; about half a minute
# make coverage - the whole suite under coverage.py, websockify's child processes
#              included: line and branch coverage per package, failing below the floor
#              in pyproject.toml ([tool.coverage.report] fail_under); CI runs this
# make fix-style - the mechanical style fixes (X | None, sorted imports) with ruff --fix
# make test-latest - the same tests in .venv-latest, on the newest releases the ranges in
#              setup.py admit (a canary: see docs/development.md for what to do when it fails)
# make constraints - refresh constraints.txt to the newest releases (pip-compile); run
#              make test-latest first, and commit it with the versions that moved
# make man   - regenerate docs/websockify.1 from the options' definitions
# make fuzz  - the protocol's property tests with many more examples (minutes)
# make bench - side-by-side benchmark: raw TCP, upstream websockify, websocat and this
#              checkout (bench/); options go in BENCH_ARGS, e.g. make bench BENCH_ARGS=--quick
# make soak  - soak test: up to 10000 connections (as many as the open-file limit fits)
#              through one websockify, 10 minutes of churn, then 5000 idle sockets from
#              one address while an honest client connects once a second;
#              options go in SOAK_ARGS, e.g. make soak SOAK_ARGS="--duration 3600"
# make autobahn - the Autobahn WebSocket test suite against websockify (and websockets' own
#              server beside it), checked against scripts/autobahn_expected.json; Autobahn
#              needs Python 2.7 (set up in .autobahn/ on first use); options go in
#              AUTOBAHN_ARGS, e.g. make autobahn AUTOBAHN_ARGS="--performance"
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 6080
# The exact versions `make test` and `make run` install; `make constraints` writes it.
CONSTRAINTS := constraints.txt
LATEST      := .venv-latest
PIP_TOOLS   := pip-tools==7.7.0

REBIND := websockify/wrap/lib/rebind.so
CC     ?= cc
# The flags live in one place, shared with setup.py and first-use builds.
REBIND_CFLAGS = $(shell $(PYTHON) websockify/wrap/cflags.py)
REBIND_LIBS   = $(shell $(PYTHON) websockify/wrap/cflags.py --libs)

.PHONY: all run test check coverage fix-style test-latest constraints man fuzz bench soak autobahn clean rebind

all: $(VENV)/.installed $(REBIND)

# rebind.so inside the package, where websockify looks first (pip builds it too).
rebind: $(REBIND)
$(REBIND): rebind/rebind.c websockify/wrap/cflags.py
	mkdir -p $(dir $@)
	$(CC) $(REBIND_CFLAGS) -o $@ $< $(REBIND_LIBS)

$(VENV)/.installed: setup.py pyproject.toml $(CONSTRAINTS)
	@# A venv made before python3-venv was installed has no pip: make it again.
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

# The test tools (pytest, mypy, ruff...) only for `make test`.
$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

# The demo chat server believes it listens on $(PORT); rebind.so moves it to a
# private loopback port and websockify serves the page and the WebSocket there.
run: $(VENV)/.installed $(REBIND)
	@scripts/run_demo.sh $(BIN) $(PORT)

# System tools first, before anything is built: scripts/check_test_deps.sh
# installs what is missing when it may (root, passwordless sudo), else names
# it in one line and stops.
# COVERAGE=1 (what `make coverage` and CI run): the same suite measured, with
# websockify's child processes; settings, the floor and the subprocess patch are in
# pyproject.toml ([tool.coverage.*]). Each process writes a data file of its own,
# combined before the report: per package, then the total the floor holds.
# COVERAGE_ARGS go to pytest (a subset reports lower figures: the floor is set for
# the whole suite).
test:
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/check_test_deps.sh
	$(MAKE) --no-print-directory $(VENV)/.test-installed $(REBIND)
ifeq ($(COVERAGE),1)
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(COVERAGE_ARGS)
	$(BIN)/python -m coverage combine --quiet
	mkdir -p build
	$(BIN)/python -m coverage json --quiet --fail-under=0 -o build/coverage.json
	$(BIN)/python scripts/coverage_by_package.py build/coverage.json
	@echo "total, the figure the floor holds (fail_under):"
	$(BIN)/python -m coverage report --format=total
else
	$(BIN)/python -m pytest
endif

# The quick loop while editing. test_types.py runs ruff and mypy too; they come
# first here so that their findings are printed as they are.
check: $(VENV)/.test-installed $(REBIND)
	$(BIN)/python -m ruff check
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q tests/unit

coverage:
	$(MAKE) --no-print-directory test COVERAGE=1

# One Optional style and sorted imports, applied by ruff; then enable the rules
# (extend-select in pyproject.toml) so they stay applied.
fix-style: $(VENV)/.test-installed
	$(BIN)/python -m ruff check --fix --extend-select UP007,UP045,I

# Newest releases, no constraints; the venv is upgraded on every run. It prints
# where they differ from constraints.txt first, so a failure names its suspects.
test-latest:
	@PYTHON=$(PYTHON) VENV=$(LATEST) scripts/check_test_deps.sh
	$(MAKE) --no-print-directory $(REBIND)
	$(LATEST)/bin/python -m pip --version >/dev/null 2>&1 || { rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST); }
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	@$(LATEST)/bin/python scripts/versions_against.py $(CONSTRAINTS)
	$(LATEST)/bin/python -m pytest

# pip-compile in a venv of its own, so its version is the one named here.
constraints:
	test -x .venv-tools/bin/python || $(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet '$(PIP_TOOLS)'
	CUSTOM_COMPILE_COMMAND='make constraints' .venv-tools/bin/pip-compile --quiet --upgrade --all-extras \
		--strip-extras --no-emit-index-url --no-emit-find-links --output-file $(CONSTRAINTS) setup.py

# websockify(1) from the click definitions behind --help; tests/unit/test_manpage.py
# fails when the committed page differs from what this writes.
man: $(VENV)/.installed
	$(BIN)/python -m websockify.manpage > docs/websockify.1

# HYPOTHESIS_MAX_EXAMPLES=N overrides the count; failures found are kept in .hypothesis/
# and replayed first by the next run. No per-test timeout: one property may take minutes.
fuzz: $(VENV)/.test-installed
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q --timeout=0 --hypothesis-show-statistics \
		tests/unit/protocol/test_*_properties.py

# The benchmark's load generator and target server: one C program, no libraries.
WSLOAD     := bench/build/wsload
WSLOAD_SRC := bench/wsload.c bench/wsproto.c bench/serve.c bench/client.c bench/client_conn.c \
              bench/client_tests.c
$(WSLOAD): $(WSLOAD_SRC) bench/wsload.h bench/client.h
	mkdir -p $(dir $@)
	$(CC) -O2 -Wall -o $@ $(WSLOAD_SRC)

bench: $(VENV)/.installed $(REBIND) $(WSLOAD)
	scripts/bench.sh $(BENCH_ARGS)

soak: $(VENV)/.installed
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

autobahn: $(VENV)/.installed
	$(BIN)/python scripts/autobahn.py $(AUTOBAHN_ARGS)

clean:
	rm -rf $(VENV) $(LATEST) .venv-tools build dist *.egg-info .pytest_cache $(REBIND) .coverage .coverage.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
