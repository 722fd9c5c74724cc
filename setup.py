import ast
import os
import runpy
import shutil
import subprocess
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REBIND_SOURCE = HERE / "rebind" / "rebind.c"
# The compiler flags and the version each live in one place inside the package,
# read here without importing it (its dependencies may not be installed yet).
compile_command = runpy.run_path(str(HERE / "websockify" / "wrap" / "cflags.py"))["compile_command"]


def package_version():
    tree = ast.parse((HERE / "websockify" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise RuntimeError("websockify/__init__.py does not set __version__")


class BuildPyWithRebind(build_py):
    """Ship rebind.c inside the package and, when a compiler is here, rebind.so too.

    Without a compiler the build still succeeds: websockify compiles rebind.so on
    first use into a per-user cache, or says clearly why it cannot.
    """

    def run(self):
        super().run()
        if not REBIND_SOURCE.is_file():
            return
        target = Path(self.build_lib) / "websockify" / "wrap" / "lib"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REBIND_SOURCE, target / "rebind.c")
        compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if compiler is None:
            print("warning: no C compiler; rebind.so will be built on first use")
            return
        result = subprocess.run(compile_command(compiler, str(REBIND_SOURCE), str(target / "rebind.so")))
        if result.returncode != 0:
            print("warning: building rebind.so failed; it will be built on first use")


setup(
    name="websockify",
    version=package_version(),
    description="WebSocket-to-TCP bridge and program-wrapping launcher",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["websockify", "websockify.*"]),
    # Ranges, each bounded at the next major version: a new major release is a choice
    # made with `make test-latest`, never a surprise. The exact versions tested are in
    # constraints.txt (`make constraints` refreshes it).
    install_requires=[
        # The code uses ServerProtocol(state=OPEN) and Request, which
        # tests/unit/protocol/test_websockets_contract.py checks.
        "websockets>=17.0,<18",
        "httptools>=0.6,<1",  # llhttp, Node.js's HTTP parser, for request heads
        "click>=8.1,<9",
        "psutil>=5.9,<8",
        # A faster event loop; optional at run time (the stdlib loop is the fallback).
        "uvloop>=0.19,<1; sys_platform != 'win32' and platform_python_implementation == 'CPython'",
    ],
    extras_require={
        "test": ["pytest>=7,<10", "pytest-timeout>=2,<3", "hypothesis>=6,<7", "wheel<1", "mypy>=1,<3",
                 "ruff<1", "types-psutil<8",
                 # the token plugins' optional libraries, tested against a real redis-server
                 "redis[hiredis]>=5.0.1,<9", "jwcrypto>=1.5,<2"],
        # Optional token plugin backends: TokenRedis (redis.asyncio) and JWTTokenApi.
        "redis": ["redis[hiredis]>=5.0.1,<9"],  # 5.0.0 has no Redis.aclose()
        "jwt": ["jwcrypto>=1.5,<2"],
    },
    cmdclass={"build_py": BuildPyWithRebind},
    entry_points={"console_scripts": ["websockify = websockify.cli:main"]},
)
