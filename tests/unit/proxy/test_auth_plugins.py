"""Upstream's auth plugin contract, as its subclasses and callers use it (issue 18)."""
from __future__ import annotations

import base64

import pytest
from websockets.datastructures import Headers

from websockify.auth_plugins import AuthenticationError, BasePlugin, BasicHTTPAuth, ClientCertCNAuth, ExpectOrigin
from websockify.errors import ConfigError
from websockify.protocol.http import auth_headers
from websockify.proxy.plugins import load_authenticator, needs_target


def basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def refusal(plugin, headers) -> tuple[int, dict[str, str]]:
    with pytest.raises(AuthenticationError) as caught:
        plugin.authenticate(headers, "localhost", "1234")
    return caught.value.code, caught.value.headers


def test_basic_auth_has_upstreams_override_points():
    plugin = BasicHTTPAuth("Aladdin:open sesame")
    assert plugin.src == "Aladdin:open sesame"
    assert plugin.validate_creds("Aladdin", "open sesame") and not plugin.validate_creds("Aladdin", "x")
    plugin.authenticate(basic(b"Aladdin:open sesame"), "localhost", "1234")
    assert refusal(plugin, {}) == (401, {"WWW-Authenticate": 'Basic realm="Websockify"'})
    assert refusal(plugin, basic(b"Aladdin:sesame"))[0] == 401
    assert refusal(plugin, {"Authorization": "Bearer x"})[0] == 403
    assert refusal(plugin, {"Authorization": "Basic ===="})[0] == 403  # upstream: binascii.Error, a 500
    assert refusal(plugin, basic(b"no colon"))[0] == 403
    with pytest.raises(AuthenticationError):
        plugin.demand_auth()
    with pytest.raises(AuthenticationError):
        plugin.auth_error()


def test_non_ascii_credentials_are_read_as_utf8_or_latin1():
    plugin = BasicHTTPAuth("jürgen:pässword")
    plugin.authenticate(basic("jürgen:pässword".encode()), None, None)
    plugin.authenticate(basic("jürgen:pässword".encode("iso-8859-1")), None, None)  # upstream's reading


def test_basic_auth_without_a_source_refuses_everyone_as_upstream():
    plugin = BasicHTTPAuth(None)
    assert plugin.src is None
    assert refusal(plugin, basic(b"None:"))[0] == 401
    assert refusal(plugin, basic(b"a:b"))[0] == 401
    with pytest.raises(ConfigError, match="USER:PASSWORD"):  # from the command line: one line, exit 2
        load_authenticator("BasicHTTPAuth", None, None, None)


def test_a_subclass_with_its_own_init_and_validate_creds():
    class Htpasswd(BasicHTTPAuth):
        def __init__(self, src=None):  # no super().__init__(): upstream's needed none
            self.users = {"bob": "hunter2"}

        def validate_creds(self, username, password):
            return self.users.get(username) == password

    plugin = Htpasswd("ignored")
    plugin.authenticate(basic(b"bob:hunter2"), None, None)
    assert refusal(plugin, basic(b"bob:ignored"))[0] == 401
    assert load_authenticator("BasicHTTPAuth", "a:b", None, None).plugin.src == "a:b"


def test_an_override_that_returns_instead_of_raising_still_refuses():
    class Lenient(BasicHTTPAuth):
        def demand_auth(self):
            pass

    assert refusal(Lenient("a:b"), {})[0] == 403


def test_needs_target_belongs_to_the_class_that_wrote_authenticate():
    class ReadsTarget(BasicHTTPAuth):
        def authenticate(self, headers, target_host, target_port):
            pass

    class OnlyCredentials(BasicHTTPAuth):
        def validate_creds(self, username, password):
            return True

    class Upstreams:
        def authenticate(self, headers, target_host, target_port):
            pass

    assert [needs_target(plugin) for plugin in (BasicHTTPAuth("a:b"), ExpectOrigin("o"), ClientCertCNAuth("c"),
                                                OnlyCredentials(), ReadsTarget(), Upstreams(), BasePlugin())] == [
        False, False, False, False, True, True, True]


def test_the_headers_behave_like_upstreams_http_message():
    import http.client
    sent = Headers([("Host", "h"), ("X-Display", "3"), ("Authorization", "Basic x"), ("X-Twice", "a"), ("X-Twice", "b")])
    headers = auth_headers(sent, None)
    assert isinstance(headers, http.client.HTTPMessage)
    assert headers["Missing"] is None and headers.get("Missing") is None and headers.get("Missing", "d") == "d"
    assert list(headers.keys()) == ["Host", "X-Display", "Authorization", "X-Twice", "X-Twice"]
    assert headers["x-display"] == "3" and headers.get("AUTHORIZATION") == "Basic x"
    assert "x-display" in headers
    with pytest.raises(KeyError):  # two values: never silently the first one
        headers["X-Twice"]
    assert headers.get_all("x-twice") == ["a", "b"]
