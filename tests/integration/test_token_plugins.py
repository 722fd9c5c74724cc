"""Token plugins against real stores: an HTTP token API, redis-server, custom
plugins written for upstream, and missing optional libraries."""
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest
from backends import RedisServer, TokenApi
from helpers import ROOT, TcpServer, free_port, timeout, wait_for

from websockify import token_plugins
from websockify.errors import ConfigError
from websockify.proxy.plugins import load_plugin
from websockify.proxy.tokens import normalize_target
from websockify.proxy.tokens.redisdb import parse_redis_source
from websockify.token_plugins import (
    BasePlugin,
    BaseTokenAPI,
    JSONTokenApi,
    TokenBackendUnavailable,
    TokenRedis,
    parse_source_args,
)

# -- HTTP token APIs ------------------------------------------------------------------


@pytest.fixture
def api():
    server = TokenApi({"/t/plain": (200, b"10.0.0.1:5901\n"), "/t/v6": (200, b"[::1]:5902"),
                       "/j/known": (200, json.dumps({"host": "10.0.0.2", "port": 5903}).encode()),
                       "/j/strport": (200, json.dumps({"host": "[::1]", "port": "5904"}).encode()),
                       "/j/notjson": (200, b"10.0.0.1:5901"), "/j/noport": (200, b'{"host": "h"}'),
                       "/t/refused": (403, b"no"), "/t/broken": (500, b"oops"), "/t/busy": (503, b"later")})
    yield server
    server.close()


def test_plain_and_json_apis(api):
    plain, structured = BaseTokenAPI(api.url + "/t/%s"), JSONTokenApi(api.url + "/j/%s")
    # What upstream's returned: BaseTokenAPI `[host, b"port"]`, JSONTokenApi the JSON's (host, port).
    assert plain.lookup("plain") == ["10.0.0.1", b"5901"]
    assert plain.lookup("v6") == ["::1", b"5902"]
    assert structured.lookup("known") == ("10.0.0.2", 5903)
    assert structured.lookup("strport") == ("[::1]", "5904")
    assert normalize_target(plain.lookup("v6")) == ("::1", 5902)  # what the server makes of them
    assert normalize_target(structured.lookup("strport")) == ("::1", 5904)
    assert plain.lookup("unknown") is None  # 404
    assert plain.lookup("refused") is None  # any 4xx: the API says no
    for name in ("notjson", "noport"):
        with pytest.raises(ValueError):
            structured.lookup(name)
    for name in ("broken", "busy"):
        with pytest.raises(TokenBackendUnavailable, match=name == "broken" and "500" or "503"):
            plain.lookup(name)


def test_the_token_is_one_percent_encoded_path_segment(api):
    plugin = BaseTokenAPI(api.url + "/t/%s?source=websockify")
    token = "../admin/x?y=1&z=2#frag %é/"
    assert plugin.lookup(token) is None
    path, _, query = api.paths[-1].partition("?")
    assert query == "source=websockify", "the token reached the query string"
    segment = path[len("/t/"):]
    assert "/" not in segment and "?" not in segment and "#" not in segment and "&" not in segment
    assert urllib.parse.unquote(segment) == token


def test_an_api_that_is_down_or_slow(api):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(TokenBackendUnavailable, match="unreachable"):
        BaseTokenAPI(f"http://127.0.0.1:{port}/%s").lookup("x")
    assert time.monotonic() - started < timeout(3)

    slow = TokenApi({"/t/x": (200, b"h:1")}, delay=timeout(30))
    try:
        plugin = BaseTokenAPI(slow.url + "/t/%s")
        plugin.timeout = 0.5
        started = time.monotonic()
        with pytest.raises(TokenBackendUnavailable, match="within 0.5s"):
            plugin.lookup("x")
        assert time.monotonic() - started < timeout(3)
    finally:
        slow.close()

    silent = TcpServer(lambda conn: conn.recv(65536) and conn.close())  # closes without answering
    try:
        with pytest.raises(TokenBackendUnavailable):
            BaseTokenAPI(f"http://{silent.address}/%s").lookup("x")
    finally:
        silent.close()


def test_an_upstream_style_process_result_override(api):
    class HostPortApi(BaseTokenAPI):
        def process_result(self, resp):
            return resp.text.strip().split(":")  # as upstream's own code did: a list of strings

    assert HostPortApi(api.url + "/t/%s").lookup("plain") == ["10.0.0.1", "5901"]


def test_bad_api_sources():
    for source, message in ((None, "needs --token-source"), ("http://host/path", "no %s"),
                            ("ftp://host/%s", "not an http"), ("/local/%s", "not an http")):
        with pytest.raises(ConfigError, match=message):
            JSONTokenApi(source)


# -- Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(str(tmp_path), tcp=True).start()
    yield server
    server.stop()


def lookups(plugin, *tokens):
    """Each token's answer (or exception) from one event loop, then the pool closed."""
    async def run():
        answers = []
        for token in tokens:
            try:
                answers.append(await plugin.alookup(token))
            except Exception as exc:
                answers.append(exc)
        await plugin.aclose()
        return answers
    return asyncio.run(run())


def test_redis_values(redis_server):
    values = {"plain": "10.0.0.1:5901", "json": '{"host": "10.0.0.2:5902"}', "v6": "[::1]:5903",
              "json6": '{"host": "::1", "port": 5904}', "spaced": "  10.0.0.5:5905\n",
              "garbage": "no target", "badjson": "{host"}
    for key, value in values.items():
        redis_server.set(key, value)
    answers = lookups(TokenRedis(f"127.0.0.1:{redis_server.port}"), *values, "missing")
    assert answers[:5] == [("10.0.0.1", 5901), ("10.0.0.2", 5902), ("::1", 5903), ("::1", 5904),
                           ("10.0.0.5", 5905)]
    assert all(isinstance(answer, ValueError) for answer in answers[5:7]), answers
    assert answers[7] is None


def test_redis_source_formats(tmp_path, redis_server):
    redis_server.set("tok", "10.0.0.1:1")
    redis_server.set("tok", "10.0.0.2:2", db=2)
    redis_server.set("app:tok", "10.0.0.3:3")
    redis_server.set("a:b:tok", "10.0.0.4:4")
    redis_server.set("ns:tok", "10.0.0.5:5", db=1)
    port, path = redis_server.port, redis_server.socket_path
    expected = {
        "127.0.0.1": None,  # the default port 6379 is not this server: checked by parse below
        f"127.0.0.1:{port}": ("10.0.0.1", 1),
        f"[::1]:{port}": ("10.0.0.1", 1),
        f"127.0.0.1:{port}:2": ("10.0.0.2", 2),
        f"127.0.0.1:{port}::": ("10.0.0.1", 1),
        f"127.0.0.1:{port}:0::app": ("10.0.0.3", 3),
        f'127.0.0.1:{port}:::"a:b"': ("10.0.0.4", 4),
        f"redis://127.0.0.1:{port}": ("10.0.0.1", 1),
        f"redis://127.0.0.1:{port}/2": ("10.0.0.2", 2),
        f"redis://127.0.0.1:{port}/0?namespace=app": ("10.0.0.3", 3),
        f"unix://{path}?db=1&namespace=ns": ("10.0.0.5", 5),
        f"unix://{path}": ("10.0.0.1", 1),
    }
    del expected["127.0.0.1"]
    for source, target in expected.items():
        assert lookups(TokenRedis(source), "tok") == [target], source
    assert parse_redis_source("127.0.0.1")[0] == {"host": "127.0.0.1", "port": 6379, "db": 0, "password": None}
    # A URL reaches redis-py as written (redis 8.2 refuses unix:/path), less our namespace.
    for url in (f"unix://{path}", f"unix://{path}?db=1", f"redis://:p%40ss@127.0.0.1:{port}/2?db=3"):
        assert parse_redis_source(url)[1:] == (url, "")
    assert parse_redis_source(f"unix://{path}?namespace=a%3Ab&db=1")[1:] == (f"unix://{path}?db=1", "a:b")
    assert parse_redis_source("redis://h/0?db=1&namespace=ns")[1:] == ("redis://h/0?db=1", "ns")


def test_redis_with_a_password(tmp_path):
    server = RedisServer(str(tmp_path), tcp=True, password="pass:word").start()
    try:
        server.set("tok", "10.0.0.1:1")
        assert lookups(TokenRedis(f'127.0.0.1:{server.port}:0:"pass:word"'), "tok") == [("10.0.0.1", 1)]
        assert lookups(TokenRedis(f"redis://:pass%3Aword@127.0.0.1:{server.port}/0"), "tok") == [("10.0.0.1", 1)]
        [refused] = lookups(TokenRedis(f"127.0.0.1:{server.port}:0:wrong"), "tok")
        assert isinstance(refused, TokenBackendUnavailable), refused
        assert "wrong" not in str(refused)
    finally:
        server.stop()


def test_redis_over_tls(tmp_path):
    import certs
    certs.make_all(tmp_path)
    server = RedisServer(str(tmp_path), tls_dir=str(tmp_path)).start()
    try:
        server.set("tok", "10.0.0.1:1")
        ca = urllib.parse.quote(str(tmp_path / "ca.pem"))
        assert lookups(TokenRedis(f"rediss://localhost:{server.port}/0?ssl_ca_certs={ca}"), "tok") == [
            ("10.0.0.1", 1)]
        [untrusted] = lookups(TokenRedis(f"rediss://localhost:{server.port}/0"), "tok")
        assert isinstance(untrusted, TokenBackendUnavailable), untrusted
    finally:
        server.stop()


def clients_served(server):
    with server.client() as client:
        return client.info("stats")["total_connections_received"]


def test_one_pool_for_every_lookup(redis_server):
    redis_server.set("tok", "10.0.0.1:1")
    plugin = TokenRedis(f"127.0.0.1:{redis_server.port}")
    before = clients_served(redis_server)

    async def run():
        for _ in range(100):
            assert await plugin.alookup("tok") == ("10.0.0.1", 1)
        served = clients_served(redis_server)
        await plugin.aclose()
        return served

    during = asyncio.run(run())
    # Our 100 lookups opened one connection; the two INFO calls opened one each.
    assert during - before == 2, (before, during)


@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_redis_down_and_back(redis_server, over):
    redis_server.set("tok", "10.0.0.1:1")
    source = f"127.0.0.1:{redis_server.port}" if over == "tcp" else f"unix://{redis_server.socket_path}"
    plugin = TokenRedis(source)

    async def run():
        assert await plugin.alookup("tok") == ("10.0.0.1", 1)
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(TokenBackendUnavailable, match="Redis at"):
            await plugin.alookup("tok")
        assert time.monotonic() - started < timeout(3)
        redis_server.start()  # the same port and socket; the data is gone with the old process
        redis_server.set("tok", "10.0.0.9:9")
        assert await plugin.alookup("tok") == ("10.0.0.9", 9)
        await plugin.aclose()

    asyncio.run(run())


def test_a_silent_redis_times_out():
    silent = TcpServer(lambda conn: conn.recv(65536) and time.sleep(timeout(10)))  # accepts, never answers
    try:
        plugin = TokenRedis(silent.address)
        plugin.timeout = 0.5

        async def run():
            started = time.monotonic()
            with pytest.raises(TokenBackendUnavailable, match="no answer within 0.5s"):
                await plugin.alookup("tok")
            elapsed = time.monotonic() - started
            await plugin.aclose()
            return elapsed

        assert asyncio.run(run()) < timeout(3)
    finally:
        silent.close()


def test_aclose_gives_the_connection_back(redis_server):
    redis_server.set("tok", "10.0.0.1:1")
    plugin = TokenRedis(f"127.0.0.1:{redis_server.port}")

    def connected():
        with redis_server.client() as client:
            return client.info("clients")["connected_clients"]

    async def run():
        base = connected()
        await plugin.alookup("tok")
        assert connected() == base + 1
        await plugin.aclose()
        wait_for(lambda: connected() == base, 5, "Redis to see the pool closed")

    asyncio.run(run())


def test_bad_redis_sources():
    for source, message in ((None, "needs --token-source"), ("", "needs --token-source"),
                            ("host:port", "not a number"), ("host:6379:x", "not a number"),
                            ("host:1:2:3:4:5", "6 fields"), (":6379", "no host"), ("[::1", "not HOST"),
                            ("::1:6379", "no host"), ("host:99999", "out of range"),
                            ("redis://host:x/0", "integer"), ("redis://host/0?bogus=1", "bogus"),
                            ("unix://", "names no socket")):
        with pytest.raises(ConfigError, match=message):
            TokenRedis(source)


def test_parse_source_args_like_upstream():
    assert parse_source_args("a:b:c:d") == ["a", "b", "c", "d"]
    assert parse_source_args('a:"b:c":d') == ["a", "b:c", "d"]
    assert parse_source_args('host::::"first-ns:second-ns"') == ["host", "", "", "", "first-ns:second-ns"]
    assert parse_source_args("host:") == ["host", ""]
    assert parse_source_args('a"b:c') == ['a"b', "c"]


# -- custom plugins and the re-exported module -------------------------------------------


def test_a_custom_plugin_written_for_upstream(tmp_path):
    plugin = load_plugin("plugins.upstream_token_plugin.StaticTargets", "vnc1=127.0.0.1:5901,vnc2=[::1]:5902",
                         token_plugins, "--token-plugin")
    assert isinstance(plugin, BasePlugin) and not plugin.loop_safe
    assert plugin.source == "vnc1=127.0.0.1:5901,vnc2=[::1]:5902"
    assert normalize_target(plugin.lookup("vnc1")) == ("127.0.0.1", 5901)  # it returned ['127.0.0.1', '5901']
    assert normalize_target(plugin.lookup("vnc2")) == ("::1", 5902)
    assert normalize_target(plugin.lookup("nope")) is None
    (tmp_path / "tokens").write_text("t: h:1\n")
    builtin = load_plugin("TokenFile", str(tmp_path / "tokens"), token_plugins, "--token-plugin")
    assert builtin.lookup("t") == ["h", "1"]  # upstream's shape


def test_normalize_target_refuses_malformed_answers():
    for answer in ("h:1", ("h",), ("h", 1, 2), (1, 2), ("h", None), ("h", "x"), ("h", 0), ("h", True),
                   ("unix_socket", ""), {"host": "h"}):
        with pytest.raises(ValueError):
            normalize_target(answer)
    assert normalize_target((b"h", b"5901")) == ("h", 5901)
    assert normalize_target(["unix_socket", "/run/x.sock"]) == ("unix_socket", "/run/x.sock")


@pytest.mark.parametrize("plugin, source, package", [
    ("TokenRedis", "localhost", "redis"), ("JWTTokenApi", "/dev/null", "jwt")])
def test_a_missing_library_is_a_config_error_naming_pip(tmp_path, plugin, source, package):
    """A real failed import: a directory ahead on the path whose package raises ImportError."""
    for name in ("redis", "jwcrypto"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('no {name} in this environment')\n")
    code = ("import websockify.token_plugins as t\n"
            "from websockify.errors import ConfigError\n"
            f"try:\n    t.{plugin}({source!r})\n"
            "except ConfigError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(60),
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"--token-plugin {plugin} needs the "
                                     f"{'redis' if package == 'redis' else 'jwcrypto'} package: "
                                     f"pip install 'websockify[{package}]'")


# -- Oversized Redis values (issue 17, item 8) ------------------------------------------

def test_a_redis_value_over_the_bound_is_a_short_failed_lookup_and_is_not_transferred(redis_server):
    from websockify.proxy.tokens import redisdb
    MAX_VALUE = 4096  # the bound docs/tokens-and-auth.md documents
    huge = 8 * 1024 * 1024
    redis_server.set("huge", "x" * huge)
    redis_server.set("edge", "10.0.0.1:5901".ljust(MAX_VALUE))  # exactly the bound: still read
    redis_server.set("over", "10.0.0.1:5901".ljust(MAX_VALUE + 1))
    with redis_server.client() as client:
        client.rpush("alist", "y" * 100_000)
        sent_before = client.info("stats")["total_net_output_bytes"]
    answers = lookups(TokenRedis(f"127.0.0.1:{redis_server.port}"), "huge", "edge", "over", "alist", "missing")
    with redis_server.client() as client:
        sent = client.info("stats")["total_net_output_bytes"] - sent_before
    assert sent < 64 * 1024, sent  # the 8 MB value never left Redis
    huge_refused, edge, over, wrong_type, missing = answers
    assert edge == ("10.0.0.1", 5901)
    assert missing is None
    for refused in (huge_refused, over):
        assert isinstance(refused, ValueError), refused
        assert f"longer than {MAX_VALUE} bytes" in str(refused) and len(str(refused)) < 200
    assert isinstance(wrong_type, ValueError) and len(str(wrong_type)) < 300, wrong_type
    assert redisdb.MAX_VALUE == MAX_VALUE


def test_a_bad_redis_value_is_quoted_short(redis_server):
    redis_server.set("junk", "j" * 4000)
    [refused] = lookups(TokenRedis(f"127.0.0.1:{redis_server.port}"), "junk")
    assert isinstance(refused, ValueError) and "is not HOST:PORT" in str(refused)
    assert len(str(refused)) < 300, len(str(refused))


# -- Plugins that raise anything, slow APIs and redirects (issue 17, items 2 and 3) -------

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


@pytest.mark.parametrize("plugin", ["exiting_plugins.ExitsToken", "exiting_plugins.AsyncExitsToken"])
def test_a_token_plugin_raising_system_exit_or_keyboard_interrupt_is_a_500(plugin):
    from helpers import running_proxy
    from rawws import upgrade_status
    target = TcpServer(lambda conn: conn.recv(65536))
    try:
        with running_proxy("--token-plugin", plugin, "--token-source", target.address, "127.0.0.1:0",
                           env=PLUGINS) as proxy:
            assert upgrade_status(proxy.port, "/?token=exit") == 500
            assert upgrade_status(proxy.port, "/?token=interrupt") == 500
            assert upgrade_status(proxy.port, "/?token=other") == 101  # another client is still served
            assert proxy.proc.poll() is None
    finally:
        target.close()


class Dribbler:
    """An HTTP token API that answers one byte every `interval` seconds, in a thread."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nX-Padding: " + b"p" * 40 + b"\r\n\r\n10.0.0.1:5901"

    def __init__(self, interval: float):
        import threading
        self.interval = interval
        self.stop = threading.Event()
        self.server = TcpServer(self._dribble)

    def _dribble(self, conn) -> None:
        conn.recv(65536)
        for byte in self.REPLY:
            if self.stop.wait(self.interval):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.server.close()


def test_a_dribbling_api_fails_the_lookup_within_its_one_deadline():
    dribbler = Dribbler(interval=0.3)  # each read answers well within any per-read timeout
    try:
        plugin = BaseTokenAPI(f"http://{dribbler.server.address}/t/%s")
        plugin.timeout = 1.0
        started = time.monotonic()
        with pytest.raises(TokenBackendUnavailable, match="within 1s"):
            plugin.lookup("x")
        assert time.monotonic() - started < 1.0 + timeout(1)
    finally:
        dribbler.close()


class Redirector:
    """An HTTP API answering `/r/<name>` with a redirect to `locations[name]`, `/t/ok` with a target."""

    def __init__(self, locations: dict[str, str]):
        import http.server
        import threading
        self.locations = locations
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                owner.paths.append(self.path)
                name = self.path.rpartition("/")[2]
                if self.path.startswith("/r/") and name in owner.locations:
                    status, headers, body = 302, {"Location": owner.locations[name]}, b""
                elif self.path == "/t/ok":
                    status, headers, body = 200, {}, b"10.0.0.9:5909"
                else:
                    status, headers, body = 404, {}, b"no"
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_redirects_stay_within_the_origin():
    other_host = Redirector({})  # what a redirect to another origin would reach
    api = Redirector({})
    api.locations.update({
        "same": "/t/ok",
        "host": f"http://localhost:{api.port}/t/ok",  # the same server under another name
        "port": f"http://127.0.0.1:{other_host.port}/t/ok",
        "ftp": "ftp://127.0.0.1/t/ok",
        "https": f"https://127.0.0.1:{api.port}/t/ok",
    })
    try:
        plugin = BaseTokenAPI(f"http://127.0.0.1:{api.port}/r/%s")
        assert plugin.lookup("same") == ["10.0.0.9", b"5909"]  # within the origin: followed
        for name in ("host", "port", "ftp", "https"):
            with pytest.raises(TokenBackendUnavailable, match="refused redirect"):
                plugin.lookup(name)
        assert api.paths.count("/t/ok") == 1 and other_host.paths == []
    finally:
        api.close()
        other_host.close()


def test_a_hung_api_saturates_at_most_the_budget_and_the_server_recovers():
    import socket

    from helpers import running_proxy
    from rawws import upgrade_request, upgrade_status

    from websockify.proxy.routing import LOOKUP_BUDGET
    target = TcpServer(lambda conn: conn.recv(65536))
    api = TokenApi({"/j/good": (200, json.dumps({"host": "127.0.0.1", "port": target.port}).encode())},
                   delay=timeout(60))
    hung: list[socket.socket] = []
    try:
        with running_proxy("--token-plugin", "JSONTokenApi", "--token-source", api.url + "/j/%s",
                           "127.0.0.1:0") as proxy:
            for _ in range(LOOKUP_BUDGET):  # each lookup hangs at the API, holding a thread
                sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
                sock.sendall(upgrade_request("/?token=good"))
                hung.append(sock)
            wait_for(lambda: len(api.paths) == LOOKUP_BUDGET, 10, "every hung lookup at the API")
            started = time.monotonic()
            assert upgrade_status(proxy.port, "/?token=good") == 503  # over the budget: at once
            assert time.monotonic() - started < timeout(1)
            assert len(api.paths) == LOOKUP_BUDGET
            proxy.wait_log("the token plugin is busy")
            api.delay = 0
            api.release.set()  # the API answers again
            wait_for(lambda: upgrade_status(proxy.port, "/?token=good") == 101, 10, "token routing back")
    finally:
        for sock in hung:
            sock.close()
        api.close()
        target.close()

