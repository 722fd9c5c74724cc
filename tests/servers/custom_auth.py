"""A custom auth plugin, loaded by its dotted name as users load theirs."""
from websockify.auth_plugins import AuthenticationError


class TeapotUnlessToken:
    def __init__(self, src=None):
        self.token = src

    def authenticate(self, headers, target_host, target_port):
        if headers.get("X-Token") != self.token:
            raise AuthenticationError(response_code=418, response_msg="I'm a teapot")
