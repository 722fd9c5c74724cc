"""Plugins written against upstream's classes the way their users write them: subclasses
that replace upstream's methods or call up into them, loaded by dotted name."""
import os

from websockify.auth_plugins import AuthenticationError, BasicHTTPAuth
from websockify.token_plugins import BasePlugin, TokenRedis


class HtpasswdAuth(BasicHTTPAuth):
    """Users from a file of `user:password` lines. Its own __init__ does not call
    super(): upstream's BasicHTTPAuth.authenticate needed nothing from it."""

    def __init__(self, src=None):
        with open(src) as users:
            self.users = dict(line.strip().split(":", 1) for line in users if ":" in line)

    def validate_creds(self, username, password):
        return self.users.get(username) == password


class DisplayAuth:
    """Lets a client reach only the VNC display it names, computed from the target's
    port as real plugins do; reads the headers as upstream's HTTPMessage gives them."""

    def __init__(self, src=None):
        self.src = src

    def authenticate(self, headers, target_host, target_port):
        if headers["X-Not-Sent"] is not None or headers.get("X-Not-Sent") is not None:
            raise AuthenticationError(response_code=400, response_msg="a missing header is not None")
        if "X-Display" not in headers.keys():
            raise AuthenticationError(response_code=400, response_msg="header names lost their case")
        display = int(target_port) - 5900
        if target_host != "127.0.0.1" or headers["X-Display"] != str(display):
            raise AuthenticationError(response_code=403, response_msg=f"not display {display}")


class LowercaseRedis(TokenRedis):
    """Tokens are case-insensitive: lower-cased, then upstream's synchronous lookup."""

    def lookup(self, token):
        return super().lookup(token.lower())


class CountingTokens(BasePlugin):
    """`src` is a directory holding `target` (host:port); each lookup appends its token to `lookups`."""

    def lookup(self, token):
        with open(os.path.join(self.source, "lookups"), "a") as lookups:
            lookups.write(token + "\n")
        with open(os.path.join(self.source, "target")) as target:
            return target.read().strip().rsplit(":", 1)
