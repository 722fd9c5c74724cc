"""How rebind.so is compiled: the one list that make, setup.py and first-use builds share.

Dependency-free, so setup.py can load it with runpy before websockify is
importable, and `python3 websockify/wrap/cflags.py [--libs]` prints the flags
for the Makefile.
There is no -Werror here on purpose: a newer compiler's new warning must not
break a user's build. The test that compiles rebind.c asserts there is no
warning at all instead.
"""

CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra")
LIBS = ("-ldl",)  # dlsym: in libc itself since glibc 2.34, in libdl before


def compile_command(compiler: str, source: str, output: str) -> list[str]:
    """The compiler's argv that builds `output` (rebind.so) from `source` (rebind.c)."""
    return [compiler, *CFLAGS, "-o", output, source, *LIBS]


if __name__ == "__main__":
    import sys

    print(" ".join(LIBS if sys.argv[1:] == ["--libs"] else CFLAGS))
