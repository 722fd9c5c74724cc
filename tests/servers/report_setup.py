"""Prints what was set up in this process, as one line "SIGNAL SOFT_NOFILE [NAMES]":
its parent-death signal (prctl PR_GET_PDEATHSIG), its soft open-file limit, and
which of rebind.so's setup variables are left in its environment.

--child      then run this script again as a child and print the child's line too
--out FILE   write the lines to FILE (complete before --port listens) instead of stdout
--port PORT  then listen on PORT until killed, like a wrapped service
"""
import argparse
import ctypes
import os
import resource
import socket
import subprocess
import sys
import time

PR_GET_PDEATHSIG = 2
SETUP_VARIABLES = ("WEBSOCKIFY_NOFILE", "WEBSOCKIFY_PARENT_PID", "WEBSOCKIFY_PDEATHSIG")


def setup_line() -> str:
    signal = ctypes.c_int(-1)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_GET_PDEATHSIG, ctypes.byref(signal)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_PDEATHSIG)")
    names = [name for name in SETUP_VARIABLES if name in os.environ]
    return f"{signal.value} {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} {names}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    lines = [setup_line()]
    if args.child:
        child = subprocess.run([sys.executable, __file__], capture_output=True, text=True, check=True, timeout=60)
        lines.append(child.stdout.strip())
    text = "".join(line + "\n" for line in lines)
    if args.out:
        with open(args.out + ".tmp", "w") as out:
            out.write(text)
        os.rename(args.out + ".tmp", args.out)
    else:
        sys.stdout.write(text)
    if args.port:
        listener = socket.socket()
        listener.bind(("0.0.0.0", args.port))
        listener.listen()
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
