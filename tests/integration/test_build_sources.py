"""Build facts with one source each: rebind.so's compiler flags (wrap/cflags.py), the version (__init__.py)."""
import pathlib
import shlex
import subprocess
import sys

from helpers import ROOT, timeout

import websockify
from websockify.wrap.cflags import compile_command

TREE = pathlib.Path(ROOT)
FLAGS_HOME = TREE / "websockify" / "wrap" / "cflags.py"


def project_files():
    yield TREE / "Makefile"
    yield TREE / "setup.py"
    for directory in ("websockify", "tests", "scripts"):
        yield from (TREE / directory).rglob("*.py")


def test_compiler_flags_are_written_in_one_file_only():
    needle = "-W" + "extra"  # spelled apart so this file does not count
    holders = sorted(str(path.relative_to(TREE)) for path in project_files() if needle in path.read_text())
    assert holders == [str(FLAGS_HOME.relative_to(TREE))]


def test_make_compiles_rebind_with_those_flags():
    result = subprocess.run(["make", "--no-print-directory", "-n", "-B", "rebind", f"PYTHON={sys.executable}", "CC=cc"], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout(60))
    assert result.returncode == 0, result.stderr
    target = "websockify/wrap/lib/rebind.so"
    assert shlex.split(result.stdout.splitlines()[-1]) == compile_command("cc", "rebind/rebind.c", target)


def test_first_use_builds_carry_no_werror():
    # A newer compiler's new warning must not stop a user's build; the tests check there is none.
    assert not [flag for flag in compile_command("cc", "in.c", "out.so") if flag.startswith("-Werror")]


def test_the_version_is_written_in_the_package_only():
    assert websockify.__version__ not in (TREE / "setup.py").read_text()
    result = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout(120))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == websockify.__version__
