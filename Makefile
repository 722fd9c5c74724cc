# make run   - set up .venv, then run the demo: a plain TCP chat server behind websockify
# make test  - set up .venv with the exact versions in constraints.txt, then run every test
# make test-latest - the same tests in .venv-latest, on the newest releases the ranges in
#              setup.py admit (a canary: see docs/development.md for what to do when it fails)
# make constraints - refresh constraints.txt to the newest releases (pip-compile); run
#              make test-latest first, and commit both together
# make man   - regenerate docs/websockify.1 from the options' definitions
# make fuzz  - the protocol's property tests with many more examples (minutes)
# make bench - side-by-side benchmark: raw TCP, upstream websockify, websocat and this
#              checkout (bench/); options go in BENCH_ARGS, e.g. make bench BENCH_ARGS=--quick
# make soak  - soak test: 10000 connections through one websockify, 10 minutes of churn;
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

.PHONY: all run test test-latest constraints man fuzz bench soak autobahn clean rebind

all: $(VENV)/.installed $(REBIND)

# rebind.so inside the package, where websockify looks first (pip builds it too).
rebind: $(REBIND)
$(REBIND): rebind/rebind.c websockify/wrap/cflags.py
	mkdir -p $(dir $@)
	$(CC) $(REBIND_CFLAGS) -o $@ $< $(REBIND_LIBS)

$(VENV)/.installed: setup.py pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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
test:
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/check_test_deps.sh
	$(MAKE) --no-print-directory $(VENV)/.test-installed $(REBIND)
	$(BIN)/python -m pytest

# Newest releases, no constraints; the venv is upgraded on every run. It prints
# where they differ from constraints.txt first, so a failure names its suspects.
test-latest:
	@PYTHON=$(PYTHON) VENV=$(LATEST) scripts/check_test_deps.sh
	$(MAKE) --no-print-directory $(REBIND)
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
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
	rm -rf $(VENV) $(LATEST) .venv-tools build dist *.egg-info .pytest_cache $(REBIND)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
