#!/usr/bin/env bash
# The system tools the tests drive: are they here? `make test` runs this first.
#
# Missing packages are installed with apt-get when that is possible without a
# password (running as root, or passwordless sudo), saying what is installed.
# Otherwise one line names the packages and the command that installs them,
# and the exit code is 2. Package names are Debian's and Ubuntu's.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

has() { command -v "$1" >/dev/null 2>&1; }
has_any() { local name; for name; do has "$name" && return 0; done; return 1; }
# A venv without pip (made before python3-venv was installed) does not count: the
# Makefile makes it again.
can_make_venv() { "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; }
# gcc -static needs libc.a; gcc prints the bare name when it has none.
static_libc() { local path; path=$(gcc -print-file-name=libc.a 2>/dev/null) && [ "$path" != libc.a ] && [ -e "$path" ]; }
libc_dev() { [ -e /usr/include/stdio.h ] && { ! has gcc || static_libc; }; }

missing_packages() {
  local -a missing=()
  can_make_venv || missing+=(python3-venv)
  { has gcc && has cc; } || missing+=(gcc)            # rebind.so, test binaries
  libc_dev || missing+=(libc6-dev)                     # headers, and libc.a for gcc -static
  has openssl || missing+=(openssl)                    # test certificates
  has socat || missing+=(socat)                        # a wrapped echo server
  has Xvnc || missing+=(tigervnc-standalone-server)    # a wrapped VNC server
  has_any chromium chromium-browser || missing+=(chromium)  # the page tests
  [ -e /usr/share/novnc/vnc.html ] || missing+=(novnc)      # served by --web to the browser
  has redis-server || missing+=(redis-server)          # token plugins' Redis
  { has systemd-socket-activate && has systemd-analyze; } || missing+=(systemd)  # socket activation, unit checks
  has groff || missing+=(groff-base)                   # renders the man page, warnings checked
  { has nginx || [ -x /usr/sbin/nginx ]; } || missing+=(nginx)  # a reverse proxy in front (heartbeat)
  { has haproxy || [ -x /usr/sbin/haproxy ]; } || missing+=(haproxy)  # a load balancer sending PROXY headers
  echo "${missing[@]}"
}

read -r -a missing <<<"$(missing_packages)"
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if has sudo && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    sudo=(unavailable)
  fi
fi

if ! has apt-get; then
  echo "make test: missing system packages (Debian/Ubuntu names): ${missing[*]}; install them with your package manager" >&2
  exit 2
fi
if [ "${sudo[0]:-}" = unavailable ]; then
  echo "make test: missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 2
fi

apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)  # sudo would drop an exported variable
# The package lists first: on a fresh machine apt-cache knows no candidate before them.
if ! "${apt[@]}" update -qq >/dev/null; then
  echo "make test: apt-get update failed; missing system packages: ${missing[*]}" >&2
  exit 2
fi
# Ubuntu has no "chromium" package; its chromium-browser is the same browser.
# (The policy is read whole first: grep -q stops early, and with pipefail the
# writer's SIGPIPE would read as "no candidate".)
for i in "${!missing[@]}"; do
  if [ "${missing[$i]}" = chromium ] && [[ "$(apt-cache policy chromium 2>/dev/null)" != *"Candidate: "[0-9]* ]]; then
    missing[$i]=chromium-browser
  fi
done
echo "make test: installing missing system packages with apt-get: ${missing[*]}"
if ! "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "make test: apt-get could not install: ${missing[*]}" >&2
  exit 2
fi
read -r -a still <<<"$(missing_packages)"
if [ ${#still[@]} -ne 0 ]; then
  echo "make test: still missing after apt-get: ${still[*]}" >&2
  exit 2
fi
