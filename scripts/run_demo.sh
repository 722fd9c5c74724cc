#!/usr/bin/env bash
# `make run`: the demo chat server, wrapped. It believes it listens on PORT;
# rebind.so moves it to a private loopback port and websockify serves the page
# and the WebSocket on PORT. The banner waits for websockify's --pid-file, which
# it writes once it listens: a port already in use shows websockify's own error
# and no URL.
#   scripts/run_demo.sh VENV_BIN PORT
set -u
bin=$1 port=$2
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
"$bin/websockify" --pid-file "$state/pid" --web demo/web "$port" -- \
  "$bin/python" demo/chat_server.py --port "$port" &
pid=$!
# Ctrl-C reaches websockify with the rest of the terminal's process group;
# this script only waits for it to finish and passes its status on.
trap : INT TERM
for _ in $(seq 100); do  # 10 s at most
  if [ -s "$state/pid" ]; then
    echo "Open http://localhost:$port/ in a browser (Ctrl-C to stop)."
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$state/pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "websockify has not said it listens after 10 s; once it does: http://localhost:$port/"
fi
while :; do
  wait "$pid"; status=$?
  kill -0 "$pid" 2>/dev/null || break  # else a trapped signal woke the wait
done
exit "$status"
