"""TokenRedis as upstream's users call it: upstream's attributes, a synchronous lookup for
subclasses, and the server's choice between that and the non-blocking alookup (issue 18)."""
import pytest

from websockify.proxy.routing import awaited_lookup
from websockify.proxy.tokens.redisdb import upstream_value
from websockify.token_plugins import BasePlugin, TokenRedis


@pytest.mark.parametrize("source, attributes", [
    ("127.0.0.1", ("127.0.0.1", 6379, 0, None, "")),
    ("127.0.0.1:1234:2:verysecret:namespace", ("127.0.0.1", 1234, 2, "verysecret", "namespace:")),
    ('127.0.0.1::::"ns1:ns2"', ("127.0.0.1", 6379, 0, None, "ns1:ns2:")),
    ("127.0.0.1::2:", ("127.0.0.1", 6379, 2, None, "")),
])
def test_upstreams_attributes(source, attributes):
    plugin = TokenRedis(source)  # builds a client, connects to nothing
    assert (plugin._server, plugin._port, plugin._db, plugin._password, plugin._namespace) == attributes


def test_the_server_awaits_alookup_unless_a_subclass_overrides_lookup():
    class Lowercase(TokenRedis):
        def lookup(self, token):
            return super().lookup(token.lower())

    class Cached(TokenRedis):
        async def alookup(self, token):
            return await super().alookup(token)

    class Deeper(Cached):
        pass

    class AsyncPlugin(BasePlugin):
        async def lookup(self, token):
            return None

    plugin, cached, deeper, coroutine = TokenRedis("h"), Cached("h"), Deeper("h"), AsyncPlugin("x")
    assert awaited_lookup(plugin) == plugin.alookup
    assert awaited_lookup(Lowercase("h")) is None  # its lookup, calling upstream's, runs on a thread
    assert awaited_lookup(cached) == cached.alookup and awaited_lookup(deeper) == deeper.alookup
    assert awaited_lookup(coroutine) == coroutine.lookup
    assert awaited_lookup(BasePlugin("x")) is None


@pytest.mark.parametrize("value, expected", [
    ('{"host": "remote_host:remote_port"}', ["remote_host", "remote_port"]),  # unchecked, as upstream
    (' {"host": "remote_host:remote_port"} ', ["remote_host", "remote_port"]),
    (" remote_host:remote_port ", ["remote_host", "remote_port"]),
    ("[::1]:5901", ["[::1]", "5901"]),
    ('{"host": "::1", "port": 5904}', ["::1", "5904"]),
    ('{"host": "remote_host:remote_port"   ', None),
    ('{"port": 1}', None),
    ("no target", None),
    ("host:", None),
])
def test_values_read_as_upstream_read_them(value, expected):
    assert upstream_value(value) == expected
