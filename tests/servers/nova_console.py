"""nova's noVNC console proxy, `nova-novncproxy` as it is, with only the token
validation replaced: there is no cloud here, so a stub answers for the token in
NOVA_TOKEN with the console at NOVA_TARGET (host:port) and NOVA_INTERNAL_PATH
(nova's CONNECT preamble; empty for none). Everything else is nova's: its
configuration, monkey patching (eventlet unless OS_NOVA_DISABLE_EVENTLET_PATCHING
is set), NovaProxyRequestHandler, NovaWebSocketProxy and the RFB security proxy.
Run with the Python of an environment where nova is installed beside this
checkout's websockify:

    NOVA_TOKEN=t NOVA_TARGET=127.0.0.1:5901 python nova_console.py PORT WEB_DIR CONFIG_FILE
"""
import os
import sys
import time
import uuid

# isort: off
from nova.cmd import novncproxy  # monkey patching happens here, first, as in nova-novncproxy
from nova import exception, objects
from nova.console import websocketproxy
# isort: on


PORT = sys.argv[1]


def stub_connect_info(self, ctxt, token):
    """Stands in for the database and the compute service: one token, one console."""
    if token != os.environ["NOVA_TOKEN"]:
        raise exception.InvalidToken(token="***")
    host, _, port = os.environ["NOVA_TARGET"].rpartition(":")
    return objects.ConsoleAuthToken(
        console_type="novnc", host=host, port=int(port),
        internal_access_path=os.environ.get("NOVA_INTERNAL_PATH") or None,
        access_url_base=f"http://127.0.0.1:{PORT}/vnc_lite.html",
        instance_uuid=str(uuid.uuid4()), token=token, expires=int(time.time()) + 600)


def main():
    port, web, config = sys.argv[1:4]
    with open(config, "w") as file:
        file.write(f"[DEFAULT]\nweb = {web}\ndebug = true\n[vnc]\nnovncproxy_host = 127.0.0.1\n"
                   f"novncproxy_port = {port}\n")
    websocketproxy.NovaProxyRequestHandler._get_connect_info = stub_connect_info
    sys.argv = ["nova-novncproxy", "--config-file", config]
    novncproxy.main()


if __name__ == "__main__":
    main()
