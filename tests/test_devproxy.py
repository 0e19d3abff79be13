"""The loopback proxy's balancer moves on real sockets: switching the target, cutting one instance.

A failover points the proxy at the standby before killing the serving instance, so a client can
already have reconnected to the standby when the dead one's connections are cut; cutting them
must leave that reconnect alone (`drop(port)`), while `drop_all()` still cuts everything.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from fleet import wait_until

from solara_persisted.devproxy import LoopbackProxy

TIMEOUT = 5.0


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while line := self.rfile.readline():
            self.wfile.write(line)


@pytest.fixture
def echo_ports() -> Iterator[tuple[int, int]]:
    """Two echo servers on loopback: the stand-ins for instances A and B."""
    servers = [socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) for _ in range(2)]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for server, thread in zip(servers, threads, strict=True):
        server.daemon_threads = True
        thread.start()
    try:
        yield servers[0].server_address[1], servers[1].server_address[1]
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(TIMEOUT)


def _connect(proxy: LoopbackProxy) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
    assert _echoes(client), "the proxy did not relay to its target"
    return client


def _echoes(client: socket.socket) -> bool:
    """True when a line sent through the connection comes back; False once it was cut."""
    try:
        client.sendall(b"ping\n")
        return client.recv(16) == b"ping\n"
    except OSError:  # reset by the proxy
        return False


def test_drop_cuts_the_connections_to_one_instance_and_leaves_the_others(
    echo_ports: tuple[int, int],
) -> None:
    a, b = echo_ports
    with LoopbackProxy(a) as proxy:
        to_a = _connect(proxy)
        proxy.target = b  # the failover switches first ...
        to_b = _connect(proxy)  # ... and a reconnect lands on B before A's connections are cut
        with to_a, to_b:
            assert proxy.live_connections == 2
            assert proxy.drop(a) == 1
            assert not _echoes(to_a)
            assert _echoes(to_b)
            wait_until(lambda: proxy.live_connections == 1, "the proxy forgetting the cut connection")


def test_drop_all_cuts_every_connection(echo_ports: tuple[int, int]) -> None:
    a, b = echo_ports
    with LoopbackProxy(a) as proxy:
        to_a = _connect(proxy)
        proxy.target = b
        to_b = _connect(proxy)
        with to_a, to_b:
            assert proxy.drop_all() == 2
            assert not _echoes(to_a)
            assert not _echoes(to_b)
