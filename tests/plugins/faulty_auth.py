"""Auth plugins that misbehave, loaded by dotted name as users load theirs."""
import threading

from websockify.auth_plugins import AuthenticationError

RELEASE = threading.Event()


class Crashes:
    """Raises what a buggy plugin raises: anything but AuthenticationError."""

    def __init__(self, src=None):
        pass

    def authenticate(self, headers, target_host, target_port):
        raise RuntimeError("plugin bug: " + str(headers.get("X-Boom")))


class Hangs:
    """Never answers (a dead authentication backend)."""

    def __init__(self, src=None):
        pass

    def authenticate(self, headers, target_host, target_port):
        RELEASE.wait(3600)


class NeedsXToken:
    """Reads a header the proxy does not know about."""

    def __init__(self, src=None):
        self.token = src

    def authenticate(self, headers, target_host, target_port):
        if headers["X-Token"] != self.token:
            raise AuthenticationError(response_code=403, response_msg="bad token")
