"""Upstream's WebSocketProxy arguments, as importing programs pass them, become our settings."""
from __future__ import annotations

import pytest

from websockify import websocketproxy
from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy, select_ssl_version


class Handler(ProxyRequestHandler):
    def new_websocket_client(self) -> None:
        """Chooses its own target, as nova's does."""


def test_positional_arguments_follow_upstreams_order(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("")  # exists: upstream turns TLS on only then
    # RequestHandlerClass, listen_fd, listen_host, listen_port, source_is_ipv6, verbose, cert
    proxy = WebSocketProxy(Handler, None, "127.0.0.1", 6080, False, True, str(cert), target_host="h",
                           target_port=5901, ssl_options=select_ssl_version("tlsv1_2"), tcp_keepidle=30)
    assert (proxy.listen_host, proxy.listen_port, proxy.verbose, proxy.target_port) == ("127.0.0.1", 6080, True, 5901)
    config, _, _ = proxy._config_and_plugins()
    assert config.tls.cert == str(cert) and config.tls.min_version == "tlsv1_2"
    assert str(config.listen) == "127.0.0.1:6080" and str(config.target) == "h:5901"


def test_a_missing_certificate_means_plain_as_upstream(tmp_path):
    proxy = WebSocketProxy(listen_port=6080, target_host="h", target_port=1, cert=str(tmp_path / "self.pem"))
    config, _, _ = proxy._config_and_plugins()
    assert not config.tls.enabled


def test_a_handler_class_may_choose_every_target():
    proxy = WebSocketProxy(listen_host="127.0.0.1", listen_port=6080, RequestHandlerClass=Handler)
    config, _, _ = proxy._config_and_plugins()
    assert config.target is None
    assert proxy.serves_websocket and not proxy.serves_http  # no web directory: nothing to serve


@pytest.mark.parametrize("name,expected", [("default", "default"), ("tlsv1_1", "tlsv1_1"), ("tlsv1_3", "tlsv1_3"),
                                           ("sslv3", "tlsv1_3")])
def test_ssl_options_become_the_minimum_version(name, expected):
    assert websocketproxy._ssl_version_of(select_ssl_version(name)) == expected


def test_too_many_or_doubled_arguments_are_type_errors():
    with pytest.raises(TypeError, match="listen_host given twice"):
        WebSocketProxy(Handler, None, "127.0.0.1", listen_host="x")
    with pytest.raises(TypeError, match="positional"):
        WebSocketProxy(Handler, *range(40))
