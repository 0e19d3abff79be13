"""The loopback proxy's balancer moves on real sockets: switching the target, cutting one instance.

A failover points the proxy at the standby before killing the serving instance, so a client can
already have reconnected to the standby when the dead one's connections are cut; cutting them
must leave that reconnect alone (`drop(port)`), while `drop_all()` still cuts everything.

The chaos fleet's uses too: a link that is slowed (`delay`, every chunk, in order) or cut
(`refuse()` until `accept()`), and a balancer that picks each connection's instance from its
request (`route`), as cookie affinity does.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from support import wait_until

from solara_persisted.dev.proxy import ROUTE_HEAD_BYTES, LoopbackProxy

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


# -- half-open: the client's side cut, the instance's side kept open and silent -------------------


@pytest.fixture
def instance() -> Iterator[socket.socket]:
    """A listening socket the test accepts from itself: a stand-in instance that sees every byte and close."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        yield listener


def _relayed(proxy: LoopbackProxy, instance: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A client connection through the proxy and the instance's end of it, relaying both ways."""
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
    upstream, _ = instance.accept()
    upstream.settimeout(TIMEOUT)
    client.sendall(b"ping\n")
    assert upstream.recv(16) == b"ping\n"
    upstream.sendall(b"pong\n")
    assert client.recv(16) == b"pong\n"
    return client, upstream


def _next(sock: socket.socket, seconds: float = TIMEOUT) -> str:
    """What the socket sees next within `seconds`: "closed" (EOF or RST), "data" or "silence"."""
    sock.settimeout(seconds)
    try:
        return "data" if sock.recv(16) else "closed"
    except TimeoutError:
        return "silence"
    except OSError:  # reset
        return "closed"
    finally:
        sock.settimeout(TIMEOUT)


def test_half_open_cuts_the_client_and_keeps_the_instance_side_open_and_silent(
    instance: socket.socket, echo_ports: tuple[int, int]
) -> None:
    _, b = echo_ports
    a = instance.getsockname()[1]
    proxy = LoopbackProxy(a).start()
    try:
        client, upstream = _relayed(proxy, instance)
        proxy.target = b  # the failover switches first; the client's reconnect lands on B
        with client, upstream:
            assert proxy.half_open(a) == 1
            assert _next(client) == "closed", "the client did not see its connection drop"
            to_b = _connect(proxy)
            with to_b:
                assert _next(upstream, 0.5) == "silence", "the instance saw the cut, or was sent something"
                upstream.sendall(b"still here\n")  # accepted: no RST came back
                assert _next(upstream, 1.0) == "silence", "the instance saw a close after it wrote"
                assert (proxy.live_connections, proxy.half_open_connections) == (1, 1)
                assert proxy.drop(a) == 0, "a half-open connection is not live any more"
                assert _echoes(to_b), "the connection to the other instance was cut too"
            proxy.close()  # shutdown still closes what it kept open
            assert _next(upstream) == "closed", "the instance's side outlived the proxy"
    finally:
        proxy.close()


def test_release_half_open_resets_the_kept_side(instance: socket.socket) -> None:
    a = instance.getsockname()[1]
    with LoopbackProxy(a) as proxy:
        first, first_upstream = _relayed(proxy, instance)
        second, second_upstream = _relayed(proxy, instance)
        with first, first_upstream, second, second_upstream:
            assert proxy.half_open(a) == 2
            assert _next(first) == _next(second) == "closed"
            assert _next(first_upstream, 0.5) == _next(second_upstream, 0.5) == "silence"
            assert proxy.release_half_open(a + 1 if a < 65535 else a - 1) == 0  # another instance's: none
            assert proxy.release_half_open() == 2
            assert _next(first_upstream) == _next(second_upstream) == "closed"
            assert proxy.half_open_connections == 0
            assert proxy.half_open(a) == 0, "nothing live is left to cut"


# -- a faulty link: delay and cut; a routing balancer: route -----------------------------------


def _receive(client: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes (fewer only if the connection ends first)."""
    received = b""
    while len(received) < size and (chunk := client.recv(size - len(received))):
        received += chunk
    return received


def _round_trip(client: socket.socket) -> float:
    started = time.monotonic()
    assert _echoes(client), "the line did not come back"
    return time.monotonic() - started


def test_delay_slows_every_chunk_both_ways_keeps_order_and_can_change_at_any_time(
    echo_ports: tuple[int, int],
) -> None:
    a, _ = echo_ports
    with LoopbackProxy(a) as proxy, _connect(proxy) as client:
        proxy.delay = 0.3  # set on a live connection: one way in, one way back
        assert _round_trip(client) >= 0.5, "a round trip crosses the delay twice"
        lines = b"".join(b"line %d\n" % n for n in range(200))
        for n in range(200):  # many small chunks, each delayed: they still arrive in order
            client.sendall(b"line %d\n" % n)
        assert _receive(client, len(lines)) == lines
        proxy.delay = 0
        assert _round_trip(client) < 0.5, "clearing the delay did not apply to the live connection"


def test_delayed_data_still_arrives_before_the_end_of_the_stream(instance: socket.socket) -> None:
    a = instance.getsockname()[1]
    with LoopbackProxy(a, delay=0.2) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
        upstream, _ = instance.accept()
        with client, upstream:
            upstream.settimeout(TIMEOUT)
            client.sendall(b"last words\n")
            client.shutdown(socket.SHUT_WR)  # the EOF is read long before the delayed line is due
            assert upstream.recv(16) == b"last words\n"


def test_refuse_cuts_the_live_connections_and_resets_new_ones_until_accept(
    echo_ports: tuple[int, int],
) -> None:
    a, _ = echo_ports
    with LoopbackProxy(a) as proxy:
        client = _connect(proxy)
        with client:
            assert proxy.refuse() == 1 and proxy.cut
            assert not _echoes(client), "a live connection survived the cut"
        refused = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
        with refused:
            assert _next(refused) == "closed", "a new connection was relayed through a cut link"
        proxy.accept()
        assert not proxy.cut
        with _connect(proxy):  # relayed again, on the same port
            pass


def _get(port: int, path: str) -> bytes:
    """An HTTP-looking request through the proxy; the echo upstream sends the request line back."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return client.recv(256).split(b"\r\n")[0]


def test_route_picks_the_upstream_from_the_request_and_forwards_the_head_first(
    echo_ports: tuple[int, int],
) -> None:
    a, b = echo_ports
    seen: list[bytes] = []

    def route(head: bytes) -> int | None:
        seen.append(head)
        path = head.split(b" ")[1]
        return {b"/a": a, b"/b": b}.get(path)

    with LoopbackProxy(None, route=route) as proxy:
        assert _get(proxy.port, "/a") == b"GET /a HTTP/1.1", "the head was not forwarded as it came"
        to_b = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
        with to_b:
            to_b.sendall(b"GET /b HTTP/1.1\r\n\r\n")
            assert _receive(to_b, 19) == b"GET /b HTTP/1.1\r\n\r\n"
            wait_until(lambda: proxy.connections_to(b) == 1, "the connection counted against B")
            assert proxy.connections_to(a) == 0
            assert proxy.drop(b) == 1, "a routed connection is dropped by its routed port"
        assert _get(proxy.port, "/nowhere") == b"", "route() answering None did not reset the client"
        assert seen[0] == b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "route() saw more or less than the head"


def test_route_sees_at_most_the_bounded_head(echo_ports: tuple[int, int]) -> None:
    a, _ = echo_ports
    sizes: list[int] = []

    def route(head: bytes) -> int:
        sizes.append(len(head))
        return a

    with (
        LoopbackProxy(None, route=route) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as client,
    ):
        line = b"x" * 20000 + b"\n"  # no end of headers in sight: route() gets the first 8 KB
        client.sendall(line)
        assert _receive(client, len(line)) == line, (
            "the bytes read for routing were not all forwarded, in order"
        )
    assert sizes == [ROUTE_HEAD_BYTES]
