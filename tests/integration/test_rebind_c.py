"""rebind.c on its own: built with the package's flags, preloaded into small real programs.

Ports: a moved port is never bound, so any number serves; a port a program
really binds comes from binding port 0, and the run is retried (a few times) if
another process took the port in between.
"""
import errno
import os
import platform
import re
import resource
import socket
import subprocess
import sys

import pytest
from helpers import ROOT, timeout

from websockify.wrap.cflags import compile_command

SOURCE = os.path.join(ROOT, "rebind", "rebind.c")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("rebind") / "rebind.so"
    result = subprocess.run(compile_command("cc", SOURCE, str(out)), capture_output=True, text=True,
                            timeout=timeout(120))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    return out


def test_builds_without_any_warning(library):
    assert library.is_file()  # the fixture asserts the compiler printed nothing at all


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="symbol versions are glibc's")
def test_built_on_any_glibc_it_loads_on_glibc_2_17(library):
    # rebind.c asks for dlsym's (and on x86_64 memcpy's) oldest version; glibc before 2.34
    # defines that dlsym in libdl.so.2 only, so the library must keep needing it.
    symbols = subprocess.run(["objdump", "-T", str(library)], capture_output=True, text=True, check=True,
                             timeout=timeout(30)).stdout
    versions = {tuple(int(n) for n in v.split(".")) for v in re.findall(r"\(GLIBC_([\d.]+)\)", symbols)}
    assert versions and max(versions) <= (2, 17), symbols
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True,
                             timeout=timeout(30)).stdout
    assert "libdl.so.2" in re.findall(r"\(NEEDED\).*\[(.+)\]", dynamic), dynamic


def picked_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_with_free_ports(run, count: int = 1, attempts: int = 5) -> subprocess.CompletedProcess:
    """run(*ports) with ports that were free a moment ago; again if one was taken meanwhile."""
    for _ in range(attempts):
        result = run(*[picked_port() for _ in range(count)])
        if "Address already in use" not in result.stderr:
            return result
    raise AssertionError(f"ports were taken {attempts} times in a row")


def python(code: str, *args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                            timeout=timeout(30))
    if check:
        assert result.returncode == 0, result.stderr
    return result


def preload(library, **variables: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REBIND_", "WEBSOCKIFY_"))}
    return {**env, "LD_PRELOAD": str(library), **variables}


# -- moving the port (upstream's interface) ---------------------------------------------

BIND = ("import socket, sys; s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); "
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', int(sys.argv[1]))); "
        "print(s.getsockname()[0], s.getsockname()[1], u.getsockname()[0], u.getsockname()[1])")


def test_upstream_variables_move_tcp_only(library):
    def run(old, new):
        env = preload(library, REBIND_OLD_PORT=str(old), REBIND_NEW_PORT=str(new))
        result = python(BIND, str(old), env=env, check=False)
        # UDP on the same port is left alone.
        assert "Address already in use" in result.stderr or \
            result.stdout.split() == ["127.0.0.1", str(new), "0.0.0.0", str(old)], result.stderr
        return result
    assert run_with_free_ports(run, count=2).returncode == 0


def test_without_variables_nothing_moves(library):
    def run(port):
        result = python(BIND, str(port), env=preload(library), check=False)
        assert "Address already in use" in result.stderr or \
            result.stdout.split() == ["0.0.0.0", str(port), "0.0.0.0", str(port)], result.stderr
        return result
    assert run_with_free_ports(run).returncode == 0


# -- readiness: a datagram when a moved socket listens ------------------------------------

OLD_PORT = 5901  # never bound: each program below binds it only through rebind.so

LISTEN = """
import socket, sys
family, address, listen = sys.argv[1], sys.argv[2], sys.argv[3] == "listen"
s = socket.socket(socket.AF_INET6 if family == "v6" else socket.AF_INET)
if family == "v6":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((address, int(sys.argv[4])))
if listen:
    s.listen()
print(s.getsockname()[1])
"""


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def reports(sock: socket.socket) -> list[bytes]:
    """Every datagram queued now: the programs below have exited, so all of theirs are here."""
    found = []
    while True:
        try:
            found.append(sock.recv(200))
        except BlockingIOError:
            return found


@pytest.mark.parametrize("family,address,host", [
    ("v4", "0.0.0.0", "127.0.0.1"), ("v6", "::", "::1"), ("v6", "::ffff:0.0.0.0", "127.0.0.1"),
])
def test_a_moved_socket_that_listens_is_reported_once(library, notify_socket, family, address, host):
    env = preload(library, REBIND_OLD_PORT=str(OLD_PORT), REBIND_NEW_PORT="0",
                  REBIND_NOTIFY_SOCKET=notify_socket.getsockname())
    port = python(LISTEN, family, address, "listen", str(OLD_PORT), env=env).stdout.strip()
    assert port != str(OLD_PORT)
    assert reports(notify_socket) == [f"{host} {port}".encode()]


def test_by_hand_fixed_new_port_is_reported_too(library, notify_socket):
    def run(new):
        env = preload(library, REBIND_OLD_PORT=str(OLD_PORT), REBIND_NEW_PORT=str(new),
                      REBIND_NOTIFY_SOCKET=notify_socket.getsockname())
        result = python(LISTEN, "v4", "0.0.0.0", "listen", str(OLD_PORT), env=env, check=False)
        if result.returncode == 0:
            assert result.stdout.strip() == str(new)
            assert reports(notify_socket) == [f"127.0.0.1 {new}".encode()]
        return result
    assert run_with_free_ports(run).returncode == 0


def test_a_bind_alone_is_not_reported(library, notify_socket):
    env = preload(library, REBIND_OLD_PORT=str(OLD_PORT), REBIND_NEW_PORT="0",
                  REBIND_NOTIFY_SOCKET=notify_socket.getsockname())
    python(LISTEN, "v4", "0.0.0.0", "bind-only", str(OLD_PORT), env=env)
    assert reports(notify_socket) == []


def test_listening_on_another_port_is_not_reported(library, notify_socket):
    env = preload(library, REBIND_OLD_PORT=str(OLD_PORT), REBIND_NEW_PORT="0",
                  REBIND_NOTIFY_SOCKET=notify_socket.getsockname())
    python(LISTEN, "v4", "127.0.0.1", "listen", "0", env=env)  # loopback, but not the moved port
    assert reports(notify_socket) == []


ERRNO_PROGRAM = r"""
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* errno after each successful call, which rebind.so must leave as it was. */
int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0), udp = socket(AF_INET, SOCK_DGRAM, 0), rc;

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    errno = EINTR;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        return 1;
    printf("%d ", errno);
    errno = EINTR;
    if (listen(fd, 5) != 0)  /* moved and listening: a report to a socket that does not exist */
        return 1;
    printf("%d ", errno);
    errno = EINTR;
    rc = listen(udp, 5);  /* a failing listen keeps the real call's errno */
    printf("%d %d\n", rc, errno);
    return argc > 2;
}
"""


def test_errno_is_what_the_real_call_left(library, tmp_path):
    source, program = tmp_path / "errno.c", tmp_path / "errno"
    source.write_text(ERRNO_PROGRAM)
    subprocess.run(["cc", "-o", str(program), str(source)], check=True, timeout=timeout(60))
    env = preload(library, REBIND_OLD_PORT=str(OLD_PORT), REBIND_NEW_PORT="0",
                  REBIND_NOTIFY_SOCKET=str(tmp_path / "nobody-listens-here"))
    result = subprocess.run([str(program), str(OLD_PORT)], env=env, capture_output=True, text=True,
                            timeout=timeout(30))
    assert result.stdout.split() == [str(errno.EINTR), str(errno.EINTR), "-1", str(errno.EOPNOTSUPP)]


# -- the constructor: the wrapped program's own setup -------------------------------------

REPORT_SETUP = os.path.join(ROOT, "tests", "servers", "report_setup.py")


def report_setup(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, REPORT_SETUP, *args], env=env, capture_output=True, text=True,
                          timeout=timeout(30))


def test_constructor_sets_the_death_signal_and_file_limit_then_removes_its_variables(library):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_text = "infinity" if hard == resource.RLIM_INFINITY else str(hard)
    env = preload(library, WEBSOCKIFY_PDEATHSIG="9", WEBSOCKIFY_PARENT_PID=str(os.getpid()),
                  WEBSOCKIFY_NOFILE=f"256:{hard_text}")
    lines = report_setup("--child", env=env).stdout.splitlines()
    # The program: SIGKILL when its parent dies, the given limit, no variables left for its children.
    # Its child: no death signal (fork clears it), the limit inherited, nothing to set up again.
    assert lines == ["9 256 []", "0 256 []"]


def test_without_variables_the_constructor_changes_nothing(library):
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert report_setup(env=preload(library)).stdout.splitlines() == [f"0 {soft} []"]


def test_a_parent_that_died_before_the_constructor_ran_means_the_signal_at_once(library):
    # Our parent is this test, not pid 1: just as if websockify had died and we were reparented.
    env = preload(library, WEBSOCKIFY_PDEATHSIG="9", WEBSOCKIFY_PARENT_PID="1")
    result = report_setup(env=env)
    assert (result.returncode, result.stdout) == (-9, "")
