"""Case (a) of the instruction benchmark: the protocol, the WSGI bridge and the bare app, alone.

``python -m benchmarks.instructions_harness FD`` serves the listening socket FD (inherited from
``benchmarks/instructions.py``, which runs this under callgrind) with nothing of the engine
around the request path: one thread accepts a connection and answers its requests one after
the other with a blocking read loop (a ``recv`` per request, as the dev server's turn does), the
sans-IO `Connection` parsing and framing and `WSGIBridge.handle` building the environ, running
the app and sending the answer. No loop thread, no selector, no thread strategy, no timers: what
this process spends per request beyond that is one ``recv`` call and this loop's few lines.
"""

from __future__ import annotations

import socket
import sys

from benchmarks.apps import build_app
from microwsgi.server.protocol import NEED_DATA, Connection, ProtocolError, RequestHead
from microwsgi.server.wsgi import WSGIBridge

RECV_SIZE = 65536


def serve_connection(client: socket.socket, bridge: WSGIBridge, base: dict[str, object]) -> None:
    """Answer the requests of one connection until the client closes it (or breaks HTTP)."""
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    address, port = client.getpeername()[:2]
    peer = (address, str(port))
    http = Connection()
    while True:
        try:
            event = http.next_event()
        except ProtocolError:
            return
        if type(event) is RequestHead:
            if not bridge.handle(client, http, event, peer, base):
                return
            http.start_next_cycle()
        elif event is NEED_DATA:
            http.receive_data(client.recv(RECV_SIZE))
        else:  # the client closed between requests
            return


def main(argv: list[str]) -> None:
    listener = socket.socket(fileno=int(argv[0]))
    bridge = WSGIBridge(build_app("bare"), access_log=False)
    base = bridge.base_environ("127.0.0.1", str(listener.getsockname()[1]))
    while True:
        client, _ = listener.accept()
        with client:
            serve_connection(client, bridge, base)


if __name__ == "__main__":
    main(sys.argv[1:])
