#!/usr/bin/env python3
"""A websockify column that routes by token, for `make bench` (bench/README.md):

    python3 bench/run.py --path '/?token=bench' --tests rate --columns ours \\
        --column 'file=python3 {root}/bench/token_proxy.py file {listen} {target}' \\
        --column 'redis=python3 {root}/bench/token_proxy.py redis {listen} {target}'

`file`: a TokenFile of 10 000 lines, the last of which routes token `bench` to the
target. `redis`: a redis-server of its own on a Unix socket (it lives in the
column's process group, so the driver stops it with the proxy), holding the
same 10 000 tokens. Then this process becomes websockify.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENS = 10_000


def main() -> None:
    kind, listen, target = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="bench-tokens-")
    lines = [f"t{i}: 127.0.0.1:{10000 + i % 50000}" for i in range(TOKENS - 1)] + [f"bench: {target}"]
    if kind == "file":
        source = os.path.join(work, "tokens")
        with open(source, "w") as file:
            file.write("\n".join(lines) + "\n")
        plugin = "TokenFile"
    else:
        server = shutil.which("redis-server")
        if server is None:
            sys.exit("token_proxy: redis-server is not installed")
        sock = os.path.join(work, "redis.sock")
        subprocess.Popen([server, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                          "--dir", work], stdout=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        commands = "".join(f"SET {token} {value}\n" for token, _, value in (line.partition(": ") for line in lines))
        subprocess.run([shutil.which("redis-cli") or "redis-cli", "-s", sock], input=commands.encode(),
                       stdout=subprocess.DEVNULL, check=True)
        source = f"unix://{sock}"
        plugin = "TokenRedis"
    websockify = os.path.join(ROOT, ".venv", "bin", "websockify")
    os.execv(websockify, [websockify, "--token-plugin", plugin, "--token-source", source, listen])


if __name__ == "__main__":
    main()
