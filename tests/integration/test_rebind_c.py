"""rebind.c compiles without warnings; upstream's by-hand usage keeps working."""
import os
import socket
import subprocess
import sys

from websockify.wrap.cflags import compile_command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "rebind", "rebind.c")


def build(tmp_path):
    out = tmp_path / "rebind.so"
    result = subprocess.run(compile_command("cc", SOURCE, str(out)), capture_output=True, text=True, timeout=120)
    # No -Werror in the flags (a user's newer compiler must not fail): no warning at all is checked here.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    return out


BIND = ("import socket, sys; s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); "
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', int(sys.argv[1]))); "
        "print(s.getsockname()[0], s.getsockname()[1], u.getsockname()[0], u.getsockname()[1])")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upstream_variables_move_tcp_only(tmp_path):
    library = build(tmp_path)
    old, new = free_port(), free_port()
    env = {**os.environ, "LD_PRELOAD": str(library), "REBIND_OLD_PORT": str(old), "REBIND_NEW_PORT": str(new)}
    out = subprocess.run([sys.executable, "-c", BIND, str(old)], env=env, capture_output=True, text=True,
                         timeout=30).stdout.split()
    assert out == ["127.0.0.1", str(new), "0.0.0.0", str(old)]  # UDP on the same port is left alone


def test_kernel_chosen_port_is_reported(tmp_path):
    library = build(tmp_path)
    old = free_port()
    report = tmp_path / "port"
    env = {**os.environ, "LD_PRELOAD": str(library), "REBIND_OLD_PORT": str(old), "REBIND_NEW_PORT": "0",
           "REBIND_PORT_FILE": str(report)}
    out = subprocess.run([sys.executable, "-c", BIND, str(old)], env=env, capture_output=True, text=True,
                         timeout=30).stdout.split()
    assert out[0] == "127.0.0.1" and out[1] != str(old)
    assert report.read_text() == f"127.0.0.1 {out[1]}\n"


def test_without_variables_nothing_moves(tmp_path):
    library = build(tmp_path)
    port = free_port()
    env = {**os.environ, "LD_PRELOAD": str(library)}
    env.pop("REBIND_OLD_PORT", None)
    out = subprocess.run([sys.executable, "-c", BIND, str(port)], env=env, capture_output=True, text=True,
                         timeout=30).stdout.split()
    assert out == ["0.0.0.0", str(port), "0.0.0.0", str(port)]
