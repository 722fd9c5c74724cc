"""A real (non-editable) install carries rebind.c and a built rebind.so inside the package."""
import os
import subprocess
import sys

from helpers import ROOT, timeout


def test_pip_install_builds_rebind_into_the_package(tmp_path):
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), ROOT],
        capture_output=True, text=True, timeout=timeout(300))
    assert result.returncode == 0, result.stderr
    lib = target / "websockify" / "wrap" / "lib"
    assert (lib / "rebind.c").is_file()
    assert (lib / "rebind.so").is_file()
    # The installed package finds its own library, without any cache or compiler.
    code = "from websockify.wrap.rebind import find_rebind; print(find_rebind())"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(60),
                           env={**os.environ, "PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "CC": "",
                                "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}, cwd=str(tmp_path))
    assert found.stdout.strip() == str(lib / "rebind.so"), found.stderr
