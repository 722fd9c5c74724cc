"""A program that embeds websockify as OpenStack's console proxies do: a
ProxyRequestHandler subclass and WebSocketProxy(RequestHandlerClass=...).

    python handler_proxy.py KIND TARGET_HOST TARGET_PORT [keyword=value ...]

KIND chooses the subclass; the listening port is chosen by the system (the log
line "listening on 127.0.0.1:PORT" says which).
"""
import sys
import threading

import websockify
from websockify import websockifyserver


class Greeting(websockify.ProxyRequestHandler):
    """Talks to the client first (as nova's RFB security proxy does), then relays."""

    def new_websocket_client(self):
        self.send_frames([b"hello " + self.path.encode()])
        got = b""
        while len(got) < 5:
            frames, closed = self.recv_frames()
            got += b"".join(frames)
            if closed:
                return
        self.send_frames([b"you said " + got[:5]])
        target = self.socket(self.server.target_host, self.server.target_port, connect=True)
        target.sendall(b"[preamble]")
        self.msg("connecting to: %s:%s", self.server.target_host, self.server.target_port)
        self.do_proxy(target)

    def socket(self, *args, **kwargs):
        return websockifyserver.WebSockifyServer.socket(*args, **kwargs)


class Refusing(websockify.ProxyRequestHandler):
    def new_websocket_client(self):
        raise self.CClose(4000, "no console for you")


class Broken(websockify.ProxyRequestHandler):
    def new_websocket_client(self):
        raise ValueError("the handler's own bug")


class Returning(websockify.ProxyRequestHandler):
    def new_websocket_client(self):
        self.send_frames([b"bye"])


class Counting(websockify.ProxyRequestHandler):
    """Its own __init__, as nova's has; records the headers and the target the server holds."""

    seen = []
    lock = threading.Lock()

    def __init__(self, *args, **kwargs):
        self.mine = True
        websockify.ProxyRequestHandler.__init__(self, *args, **kwargs)

    def new_websocket_client(self):
        with self.lock:
            self.seen.append(self.headers.get("X-Probe"))
        self.send_frames([f"{self.headers.get('X-Probe')} {self.headers.get('Missing')} {self.mine} "
                          f"{self.server.extra}".encode()])
        target = self.socket(self.server.target_host, self.server.target_port, connect=True)
        self.do_proxy(target)

    def socket(self, *args, **kwargs):
        return websockifyserver.WebSockifyServer.socket(*args, **kwargs)


class Guarding(websockify.ProxyRequestHandler):
    """Answers plain HTTP itself, as nova's send_head does: refuses a path starting with //."""

    def send_head(self):
        if self.path.startswith("//"):
            self.send_error(400, "URI must not start with //")
            return None
        return super().send_head()


class Proxy(websockify.WebSocketProxy):
    def __init__(self, *args, **kwargs):
        self.extra = kwargs.pop("extra", None)
        super().__init__(*args, **kwargs)


def main():
    kind, host, port, *rest = sys.argv[1:]
    options = dict(item.split("=", 1) for item in rest)
    handler = globals()[kind]
    server = Proxy(listen_host="127.0.0.1", listen_port=0, target_host=host, target_port=int(port),
                   RequestHandlerClass=handler, extra="x", **options)
    sys.exit(server.start_server())


if __name__ == "__main__":
    main()
