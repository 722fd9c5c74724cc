#!/usr/bin/env bash
# Side-by-side benchmark (`make bench`): raw TCP, the load generator's own WebSocket
# ceiling, upstream websockify 0.13.0, websocat 1.13.0 and this checkout, driven by the
# C load generator in bench/ in one run. Arguments go to bench/run.py, e.g. --quick;
# `bench/run.py --help` lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" bench/run.py "$@"
