"""Refuse, before starting, a program that LD_PRELOAD cannot reach.

A statically linked binary has no dynamic loader, and a set-uid/set-gid binary
that changes our ids runs in secure-execution mode, where the loader ignores
LD_PRELOAD. Either way rebind.so would not move its port, and we would proxy in
front of nothing. A script is checked through its interpreter.
"""
from __future__ import annotations

import os
import shutil
import stat
import struct

from ..errors import ConfigError

_PT_INTERP = 3
_MAX_SCRIPT_DEPTH = 4


class NotPreloadable(ConfigError):
    pass


def elf_interpreter_present(header: bytes) -> bool | None:
    """For an ELF image's first bytes: does it ask for a dynamic loader? None if not ELF."""
    if header[:4] != b"\x7fELF" or len(header) < 64:
        return None
    is_64 = header[4] == 2
    order = "<" if header[5] == 1 else ">"
    if is_64:
        phoff, = struct.unpack_from(order + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
    else:
        phoff, = struct.unpack_from(order + "I", header, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(header):
            return None  # program headers beyond what we read: cannot tell
        p_type, = struct.unpack_from(order + "I", header, offset)
        if p_type == _PT_INTERP:
            return True
    return False


def parse_shebang(first_line: bytes) -> list[str] | None:
    """`#!/usr/bin/env python3 -u` → ['/usr/bin/env', 'python3', '-u']; None if not a script."""
    if not first_line.startswith(b"#!"):
        return None
    return first_line[2:].decode("utf-8", "replace").split()


def resolve_command(name: str, path: str | None = None) -> str:
    found = shutil.which(name, path=path)
    if found is None:
        where = "" if "/" in name else " in PATH"
        raise ConfigError(f"wrapped command not found{where}: {name}")
    return os.path.realpath(found)


def check_preloadable(command: str, depth: int = 0) -> None:
    """Raise NotPreloadable (exit 2) with a message naming the reason."""
    path = resolve_command(command)
    st = os.stat(path)
    if (st.st_mode & stat.S_ISUID and st.st_uid != os.getuid()) or \
            (st.st_mode & stat.S_ISGID and st.st_gid != os.getgid()):
        raise NotPreloadable(f"cannot wrap {path}: it is set-uid/set-gid, so the loader ignores "
                             "LD_PRELOAD and its port could not be moved")
    try:
        with open(path, "rb") as file:
            header = file.read(4096)
    except OSError as exc:
        raise ConfigError(f"cannot read wrapped command {path}: {exc.strerror}") from None
    interpreter = parse_shebang(header.split(b"\n", 1)[0])
    if interpreter is not None:
        if not interpreter or depth >= _MAX_SCRIPT_DEPTH:
            return  # let exec report it
        program, args = interpreter[0], interpreter[1:]
        if os.path.basename(program) == "env":
            args = [a for a in args if not a.startswith("-") and "=" not in a]
            if not args:
                return
            program = args[0]
        check_preloadable(program, depth + 1)
        return
    if elf_interpreter_present(header) is False:
        raise NotPreloadable(f"cannot wrap {path}: it is statically linked, so LD_PRELOAD cannot "
                             "move its port")
