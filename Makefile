# make run   - set up .venv, then run the demo: a plain TCP chat server behind websockify
# make test  - set up .venv, then run every test
# make bench - side-by-side benchmark: raw TCP vs websockify (and upstream)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 6080
CHAT_PORT ?= 5999

.PHONY: all run test bench clean

all: $(VENV)/.installed

$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@echo "Open http://localhost:$(PORT)/ in a browser (Ctrl-C to stop)."
	@$(BIN)/python demo/chat_server.py --port $(CHAT_PORT) & chat=$$!; \
	trap 'kill $$chat 2>/dev/null; wait $$chat 2>/dev/null' EXIT INT TERM; \
	$(BIN)/websockify --web demo/web $(PORT) 127.0.0.1:$(CHAT_PORT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	scripts/bench.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
