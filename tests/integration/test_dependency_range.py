"""The token plugins' tests again, on the oldest and newest releases setup.py admits.

constraints.txt pins one version of each library; a user's pip may pick any in
the range. Each version here is installed once (`pip install --target`, kept in
the environment's prefix) and put in front of the installed one for a nested
pytest run of the tests that use it. redis 8.2 and jwcrypto 1.6.2 each broke a
plugin that worked on the release before.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, timeout

CACHE = Path(sys.prefix) / "dependency-range"

REDIS_TESTS = ["tests/integration/test_token_plugins.py", "-k", "redis", "tests/integration/test_routing.py"]
JWT_TESTS = ["tests/unit/proxy/tokens/test_token_jwt.py"]


def installed(package: str, version: str, needs: list[str]) -> Path:
    """A directory holding only `package==version` and the exact `needs` the environment
    lacks, installed on first use. No other dependency is resolved: the pinned ones of
    the environment serve, so a new release elsewhere cannot change this test."""
    target = CACHE / f"{package}-{version}"
    if not (target / ".complete").exists():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", str(target),
             f"{package}=={version}", *needs], capture_output=True, text=True, timeout=timeout(300))
        if result.returncode != 0:
            pytest.skip(f"cannot install {package}=={version} (is the package index reachable?): "
                        f"{result.stderr.strip().splitlines()[-1:]}")
        (target / ".complete").touch()
    return target


@pytest.mark.parametrize("package, version, needs, tests", [
    ("redis", "5.0.1", [], REDIS_TESTS),
    ("redis", "6.4.0", [], REDIS_TESTS),
    ("redis", "7.4.1", [], REDIS_TESTS),
    ("redis", "8.1.0", [], REDIS_TESTS),
    ("redis", "8.2.0", [], REDIS_TESTS),
    # 1.5.0 needed `deprecated`, which no later release and nothing else here needs.
    ("jwcrypto", "1.5.0", ["deprecated==1.3.1", "wrapt==2.5.2"], JWT_TESTS),
    ("jwcrypto", "1.6.1", [], JWT_TESTS),
    ("jwcrypto", "1.6.2", [], JWT_TESTS),
])
def test_token_plugins_on(package, version, needs, tests):
    path = installed(package, version, needs)
    probe = f"import {package}; print({package}.__version__, {package}.__file__)"
    check = f"import importlib.metadata as m; print(m.version({package!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
    seen = subprocess.run([sys.executable, "-c", probe if package == "redis" else check], capture_output=True,
                          text=True, env=env, timeout=timeout(60))
    assert seen.stdout.split()[:1] == [version], seen.stderr  # the nested run really uses that release
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout(300))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
