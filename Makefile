# make run   - set up .venv, then run the demo: a plain TCP chat server behind websockify
# make test  - set up .venv, then run every test
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

REBIND := websockify/wrap/lib/rebind.so
CC     ?= cc
# The flags live in one place, shared with setup.py and first-use builds.
REBIND_CFLAGS = $(shell $(PYTHON) websockify/wrap/cflags.py)
REBIND_LIBS   = $(shell $(PYTHON) websockify/wrap/cflags.py --libs)

.PHONY: all run test fuzz bench soak autobahn clean rebind

all: $(VENV)/.installed $(REBIND)

# rebind.so inside the package, where websockify looks first (pip builds it too).
rebind: $(REBIND)
$(REBIND): rebind/rebind.c websockify/wrap/cflags.py
	mkdir -p $(dir $@)
	$(CC) $(REBIND_CFLAGS) -o $@ $< $(REBIND_LIBS)

$(VENV)/.installed: setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test tools (pytest, mypy, ruff...) only for `make test`.
$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The demo chat server believes it listens on $(PORT); rebind.so moves it to a
# private loopback port and websockify serves the page and the WebSocket there.
run: $(VENV)/.installed $(REBIND)
	@echo "Open http://localhost:$(PORT)/ in a browser (Ctrl-C to stop)."
	exec $(BIN)/websockify --web demo/web $(PORT) -- $(BIN)/python demo/chat_server.py --port $(PORT)

# System tools first, before anything is built: scripts/check_test_deps.sh
# installs what is missing when it may (root, passwordless sudo), else names
# it in one line and stops.
test:
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/check_test_deps.sh
	$(MAKE) --no-print-directory $(VENV)/.test-installed $(REBIND)
	$(BIN)/python -m pytest

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
	rm -rf $(VENV) build dist *.egg-info .pytest_cache $(REBIND)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
