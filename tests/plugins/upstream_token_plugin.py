"""A token plugin written the way plugins for upstream websockify are: it subclasses
BasePlugin, reads `self.source`, and returns a list of strings from `lookup`."""
from websockify.token_plugins import BasePlugin


class StaticTargets(BasePlugin):
    # source: "token=host:port,token=host:port"
    def __init__(self, src):
        super(StaticTargets, self).__init__(src)
        self._targets = dict(item.split("=", 1) for item in self.source.split(","))

    def lookup(self, token):
        target = self._targets.get(token)
        if target is None:
            return None
        return target.rsplit(":", 1)
