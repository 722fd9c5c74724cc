#!/bin/sh
# Starts the echo server in the background, detached, and exits at once,
# the way `vncserver` starts Xvnc.
setsid "$PYTHON" "$(dirname "$0")/tcp_echo.py" "$@" </dev/null >/dev/null 2>&1 &
exit 0
