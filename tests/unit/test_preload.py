import resource
import shutil
import struct
import sys

from websockify.wrap.preload_check import elf_interpreter_present, parse_shebang
from websockify.wrap.rebind import child_environment


def elf64(program_header_types):
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, len(program_header_types))
    for p_type in program_header_types:
        entry = bytearray(56)
        struct.pack_into("<I", entry, 0, p_type)
        header += entry
    return bytes(header)


def test_elf_interpreter_detection():
    assert elf_interpreter_present(elf64([6, 3, 1])) is True
    assert elf_interpreter_present(elf64([1, 1, 2])) is False
    assert elf_interpreter_present(b"#!/bin/sh\n") is None


def test_real_binaries():
    with open(sys.executable, "rb") as f:
        assert elf_interpreter_present(f.read(4096)) is True
    with open(shutil.which("sh"), "rb") as f:
        assert elf_interpreter_present(f.read(4096)) is True


def test_shebang():
    assert parse_shebang(b"#!/usr/bin/env python3 -u") == ["/usr/bin/env", "python3", "-u"]
    assert parse_shebang(b"\x7fELF") is None


def test_child_environment_puts_rebind_first_and_leaves_ours_alone(tmp_path):
    base = {"LD_PRELOAD": "/lib/other.so", "PATH": "/bin"}
    env = child_environment(base, tmp_path / "rebind.so", 5901, "/run/x/notify.1", "MARK=1", 4242, (256, 4096))
    assert env == {
        "LD_PRELOAD": f"{tmp_path / 'rebind.so'}:/lib/other.so",
        "PATH": "/bin",
        "REBIND_OLD_PORT": "5901",
        "REBIND_NEW_PORT": "0",
        "REBIND_NOTIFY_SOCKET": "/run/x/notify.1",
        "WEBSOCKIFY_PDEATHSIG": "9",
        "WEBSOCKIFY_PARENT_PID": "4242",
        "WEBSOCKIFY_NOFILE": "256:4096",
        "MARK": "1",
    }
    assert base == {"LD_PRELOAD": "/lib/other.so", "PATH": "/bin"}


def test_child_environment_writes_an_unlimited_file_limit_as_infinity(tmp_path):
    env = child_environment({}, tmp_path / "rebind.so", 5901, "/n", "MARK=1", 1, (1024, resource.RLIM_INFINITY))
    assert (env["LD_PRELOAD"], env["WEBSOCKIFY_NOFILE"]) == (str(tmp_path / "rebind.so"), "1024:infinity")
