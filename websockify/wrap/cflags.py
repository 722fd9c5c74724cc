"""How rebind.so is compiled: the one list that make, setup.py and first-use builds share.

Dependency-free, so setup.py can load it with runpy before websockify is
importable, and `python3 websockify/wrap/cflags.py [--libs]` prints the flags
for the Makefile.
There is no -Werror here on purpose: a newer compiler's new warning must not
break a user's build. The test that compiles rebind.c asserts there is no
warning at all instead.
"""
from __future__ import annotations

import os
import shutil

CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra")


def libs() -> tuple[str, ...]:
    """The libraries rebind.so links, after the source: they depend on the C library.

    On glibc, rebind.c asks for dlsym's oldest symbol version, which glibc before
    2.34 defines in libdl.so.2 only (2.34 moved dlsym into libc). So libdl.so.2 must
    be a needed library even when built on a newer glibc, whose libdl.so.2 is an
    empty stub and has no libdl.so to link by -ldl: name the file, and keep it
    through the --as-needed that Debian's and Ubuntu's gcc pass. musl has dlsym
    in libc and an empty libdl.a.
    """
    if _glibc():
        return ("-Wl,--no-as-needed", "-l:libdl.so.2")
    return ("-ldl",)


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not a name this C library knows: not glibc
        return False


def compile_command(compiler: str, source: str, output: str) -> list[str]:
    """The compiler's argv that builds `output` (rebind.so) from `source` (rebind.c)."""
    return [compiler, *CFLAGS, "-o", output, source, *libs()]


def find_compiler() -> str | None:
    """$CC if set (and nothing else then), else cc, gcc or clang on PATH; None if none is there."""
    configured = os.environ.get("CC")
    if configured:
        return shutil.which(configured)
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


if __name__ == "__main__":
    import sys

    print(" ".join(libs() if sys.argv[1:] == ["--libs"] else CFLAGS))
