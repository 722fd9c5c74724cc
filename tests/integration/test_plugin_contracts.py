"""Token plugins as upstream's users call them (issue 18): TokenRedis's synchronous
lookup from a subclass loaded by dotted name, and a token source that does not exist
yet at start (systemd ordering), each against a real websockify and a real client."""
import asyncio
import base64
import os
import socket

import pytest
from backends import RedisServer
from helpers import ROOT, running_proxy, start_proxy, timeout, ws_connect
from websockets.exceptions import InvalidStatus

from websockify import token_plugins
from websockify.proxy.plugins import load_plugin
from websockify.proxy.routing import awaited_lookup
from websockify.token_plugins import TokenRedis

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(str(tmp_path), tcp=True).start()
    yield server
    server.stop()


def lookups(plugin, *tokens):
    """Each token's answer from alookup(), the server's path, on one event loop; then the pool closed."""
    async def run():
        answers = [await plugin.alookup(token) for token in tokens]
        await plugin.aclose()
        return answers
    return asyncio.run(run())



def ws_status(url: str) -> int:
    """101 when a real WebSocket client connects through and gets its echo, else the refusal's status."""
    async def scenario() -> int:
        async with asyncio.timeout(timeout(20)):
            try:
                async with ws_connect(url) as ws:
                    await ws.send(b"ping")
                    assert await ws.recv() == b"ping"
                    return 101
            except InvalidStatus as exc:
                return exc.response.status_code
    return asyncio.run(scenario())


def test_token_redis_lookup_is_upstreams_synchronous_call(redis_server):
    """Called directly, as upstream's: a plain call returning `[host, "port"]`, None for a missing
    key or a value that is no target; the server itself awaits alookup()."""
    redis_server.set("plain", "10.0.0.1:5901")
    redis_server.set("ns:json", '{"host": "10.0.0.2:5902"}')
    redis_server.set("garbage", "no target")
    plugin = TokenRedis(f"127.0.0.1:{redis_server.port}")
    assert plugin.lookup("plain") == ["10.0.0.1", "5901"]
    assert plugin.lookup("missing") is None and plugin.lookup("garbage") is None
    assert TokenRedis(f"127.0.0.1:{redis_server.port}:::ns").lookup("json") == ["10.0.0.2", "5902"]
    assert awaited_lookup(plugin) == plugin.alookup
    assert lookups(plugin, "plain") == [("10.0.0.1", 5901)]


def test_a_token_redis_subclass_calling_super_lookup_serves_real_clients(redis_server, echo_server):
    """`super().lookup(token)` from a subclass loaded by dotted name (before: a coroutine, 500)."""
    redis_server.set("desk", echo_server.address)
    source = f"127.0.0.1:{redis_server.port}"
    subclass = load_plugin("plugins.upstream_subclasses.LowercaseRedis", source, token_plugins, "--token-plugin")
    assert awaited_lookup(subclass) is None  # its own lookup runs, on a thread
    with running_proxy("--token-plugin", "upstream_subclasses.LowercaseRedis", "--token-source", source,
                       "127.0.0.1:0", env=PLUGINS) as proxy:
        assert ws_status(proxy.url + "?token=DESK") == 101
        assert ws_status(proxy.url + "?token=nope") == 404
        assert "Traceback" not in proxy.log


def signed_token(key_file, claims: dict) -> str:
    from jwcrypto import jwk, jwt
    key = jwk.JWK(kty="oct", k=open(key_file).read().strip())
    token = jwt.JWT(header={"alg": "HS256"}, claims=claims)
    token.make_signed_token(key)
    return token.serialize()


@pytest.mark.parametrize("plugin", ["TokenFile", "ReadOnlyTokenFile", "TokenFileName", "JWTTokenApi"])
def test_a_token_source_that_does_not_exist_yet_at_start(tmp_path, echo_server, plugin):
    """A unit started before its token source exists (systemd ordering): READY=1 at once,
    503 while the source is missing, served once it appears, without a restart."""
    source = tmp_path / "later" / ("key" if plugin == "JWTTokenApi" else "tokens")
    token = "desk"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(timeout(20))
    proxy = start_proxy("--token-plugin", plugin, "--token-source", str(source), "127.0.0.1:0",
                        env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        for _ in range(11):  # past the guess limit (10 unknown tokens): a 503 is not counted as a guess
            assert ws_status(proxy.url + "?token=desk") == 503
        source.parent.mkdir()
        if plugin == "TokenFileName":
            source.mkdir()
            (source / "desk").write_text(echo_server.address)
        elif plugin == "JWTTokenApi":
            source.write_text(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())
            token = signed_token(source, {"host": "127.0.0.1", "port": echo_server.port})
        else:
            source.write_text(f"desk: {echo_server.address}\n")
        assert ws_status(proxy.url + f"?token={token}") == 101
        proxy.wait_log("does not exist yet")
    finally:
        proxy.stop()
        notify.close()
