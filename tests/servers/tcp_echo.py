"""A plain TCP echo server for wrapping tests: knows nothing of websockify.

--bind v4|v6|both|mapped  which address(es) to bind the port on
--listen-gate FIFO        bind, then wait until someone opens FIFO for writing and closes
                          it, then listen (a slow start that a test controls)
--signal-log FILE         append the name of each SIGHUP/SIGUSR1/SIGUSR2 received
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time


def serve(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default="v4", choices=["v4", "v6", "both", "mapped", "v4-specific"])
    parser.add_argument("--listen-gate")
    parser.add_argument("--signal-log")
    args = parser.parse_args()
    if args.signal_log:
        def note(signum, _frame):
            with open(args.signal_log, "a") as log:
                log.write(signal.Signals(signum).name + "\n")
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, note)
    listeners = []
    if args.bind in ("v4", "both", "v4-specific"):
        s = socket.socket(socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1" if args.bind == "v4-specific" else "0.0.0.0", args.port))
        listeners.append(s)
    if args.bind in ("v6", "both", "mapped"):
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if args.bind == "both" else 0)
        s.bind(("::ffff:0.0.0.0" if args.bind == "mapped" else "::", args.port))
        listeners.append(s)
    if args.listen_gate:
        with open(args.listen_gate) as gate:  # blocks until a writer opens it
            gate.read()  # and returns at its close
    for s in listeners:
        s.listen(64)
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    print(f"echo server pid {os.getpid()} bound {[s.getsockname() for s in listeners]}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
