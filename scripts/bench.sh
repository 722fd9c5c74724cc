#!/usr/bin/env bash
# Side-by-side benchmark: raw TCP (the machine's limit), upstream websockify and ours,
# driven by the same C load generator in one run. Uses the independent harness in
# ../shared/bench (override with WSBENCH_DIR); extra arguments go to it, e.g. --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WSBENCH_DIR:-../shared/bench}"
if [[ ! -x "$bench_dir/run.sh" ]]; then
  echo "bench: no benchmark harness at $bench_dir (set WSBENCH_DIR)" >&2
  exit 2
fi
exec "$bench_dir/run.sh" --targets "${BENCH_TARGETS:-raw,upstream,ours}" \
  --ours "$PWD/.venv/bin/websockify {listen} {target}" "$@"
