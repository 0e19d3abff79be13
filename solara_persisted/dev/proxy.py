"""A switchable TCP proxy on loopback: the load balancer of a local fleet, or a faulty network link.

Used by ``solara-persisted demo --fleet`` (the browser talks to it; a failover switches its
target) and by the end-to-end tests, which need the same thing: one stable address in front of
instances that die, plus the ability to cut every live connection as a balancer does, or to cut
only the client's half of it (a half-open link, which the instance never notices).

The chaos fleet (``bench/chaos_fleet.py``) also puts one between each instance and Redis, to
slow that link down (``delay``) or cut it (``refuse()`` until ``accept()``), and uses ``route``
in front of the instances: each connection's target is picked from its first request bytes, as a
balancer with cookie affinity picks the instance from the request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

PROXY_TIMEOUT = 5.0
#: How much of a connection's start `route` sees at most: the request line and headers of an HTTP request.
ROUTE_HEAD_BYTES = 8192
#: How long a routed connection may take to send that much (or the end of its headers) before it is reset.
ROUTE_TIMEOUT = 5.0
#: Chunks read ahead while earlier ones wait out `delay`; a full queue stops reading (back pressure).
DELAY_QUEUE = 256
T = TypeVar("T")


class _Link:
    """One proxied connection: the client's socket, the instance's, and the two pumps between them."""

    __slots__ = ("client", "held", "pumps", "target", "upstream")

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter, target: int) -> None:
        self.client = client
        self.upstream = upstream
        self.target = target  # the instance port it was connected to
        self.pumps: tuple[asyncio.Task[None], ...] = ()
        self.held = False  # half-open: the client side is gone, the upstream side is kept open and silent


class LoopbackProxy:
    """A TCP proxy on 127.0.0.1 (or `host`) in its own thread: the fleet's load balancer.

    `target` picks the instance new connections go to (None refuses them); `drop(port)` resets
    the live connections to one instance, as a balancer does when its health check marks that
    instance dead, and `drop_all()` resets every one of them. `half_open(port)` cuts only the
    clients' side of them: the instance keeps a connection that has gone silent.

    As a faulty link: `delay` (seconds, settable at any time) holds every chunk that long before
    it is forwarded, in either direction and in order; `refuse()` resets every live connection
    and each new one until `accept()`. As a routing balancer: with `route` set, each new
    connection's first bytes (up to the end of its HTTP headers, at most ``ROUTE_HEAD_BYTES``)
    are read first and `route(head)` names the port to connect to (None resets the connection);
    the head is then sent upstream ahead of everything else. `target` is unused while `route` is set.
    """

    def __init__(
        self,
        target: int | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        route: Callable[[bytes], int | None] | None = None,
    ) -> None:
        self.target = target
        self.host = host
        self.port = port  # 0: the OS picks a free one on start()
        self.delay = delay  # seconds each forwarded chunk waits, both directions; read per chunk
        # called on the proxy's thread, once per connection: keep it quick and thread-safe
        self.route = route
        self.accepted = 0  # client connections accepted so far (a reconnect shows up here)
        self._cut = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[_Link] = set()
        self._held: set[_Link] = set()  # half-open: upstream sockets kept open until released or closed
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def live_connections(self) -> int:
        return len(self._live)

    @property
    def half_open_connections(self) -> int:
        return len(self._held)

    @property
    def cut(self) -> bool:
        """True between `refuse()` and `accept()`."""
        return self._cut

    def connections_to(self, target: int) -> int:
        """The live connections to the instance on port `target` (the half-open ones not included)."""
        return sum(1 for link in list(self._live) if link.target == target)

    def start(self) -> LoopbackProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def drop_all(self) -> int:
        """Reset every open connection (both sides get an RST); returns how many were cut."""
        return self._call(self._drop(None))

    def drop(self, target: int) -> int:
        """Reset the open connections to the instance on port `target`; returns how many were cut.

        Connections to any other instance stay up: after `target` was switched away from a dead
        instance, a client that already reconnected to the new one keeps that connection.
        """
        return self._call(self._drop(target))

    def half_open(self, target: int) -> int:
        """Cut the client side of the connections to the instance on port `target`; keep theirs open.

        The client sees its socket drop and reconnects (to the current `target`). The instance
        sees nothing: no FIN, no RST, and nothing more is read from or written to its socket, as
        when a link dies silently. That is how a paused instance wakes up holding a kernel it
        believes is still connected. Returns how many were cut; their instance sides stay open
        until `release_half_open()` or `close()`.
        """
        return self._call(self._half_open(target))

    def refuse(self) -> int:
        """Cut the link: reset every live connection and, until `accept()`, each new one at once.

        New connections are still accepted by the listener, then reset before a byte is relayed
        (as a firewall rule rejecting with a TCP reset would); the port stays ours, so `accept()`
        restores the very same address. Returns how many live connections were cut.
        """
        self._cut = True  # first: a connection opening meanwhile is reset once it is paired
        return self._call(self._drop(None))

    def accept(self) -> None:
        """Heal the cut: new connections are relayed again (those `refuse()` cut stay cut)."""
        self._cut = False

    def release_half_open(self, target: int | None = None) -> int:
        """Reset the upstream sockets `half_open` kept (those to `target`, or all); returns how many."""
        return self._call(self._release(target))

    def close(self) -> None:
        """Stop listening, cut everything, stop the thread; safe to call twice."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self._call(self._shutdown())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(PROXY_TIMEOUT)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(PROXY_TIMEOUT)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # from the start: a shutdown must also end a connection still being opened
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # the proxy is shutting down: this handler task is the top of its connection
        finally:
            self._tasks.discard(task)
            client_writer.transport.abort()  # a no-op unless cancelled before its pair existed

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            return  # _handle resets the client
        head = b""
        route = self.route
        try:
            if route is not None:
                head = await asyncio.wait_for(self._read_head(client_reader), ROUTE_TIMEOUT)
                target = route(head) if head else None
            else:
                target = self.target
            if target is None:
                raise ConnectionRefusedError("no target")
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target), PROXY_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            return  # _handle resets the client
        except Exception:  # a broken route function: the client is reset, the proxy keeps serving
            return
        if self._cut:  # refuse() ran while this one was connecting: no drop could reach it
            upstream_writer.transport.abort()
            return
        if head:
            upstream_writer.write(head)  # what route() read goes first, before any pump runs
        link = _Link(client_writer, upstream_writer, target)
        link.pumps = (
            asyncio.ensure_future(self._pump(client_reader, upstream_writer)),
            asyncio.ensure_future(self._pump(upstream_reader, client_writer)),
        )
        self._live.add(link)
        try:
            # one side ending (EOF or error) ends the pair, and so does a drop or a half-open cut
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._live.discard(link)
            for pump in link.pumps:
                pump.cancel()
            client_writer.transport.abort()
            if not link.held:
                upstream_writer.transport.abort()
            await asyncio.gather(*link.pumps, return_exceptions=True)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes:
        """The connection's first bytes: through the end of the HTTP headers, at most ``ROUTE_HEAD_BYTES``,
        or whatever came before the client's EOF (bytes past the headers are kept and sent on too)."""
        head = b""
        while b"\r\n\r\n" not in head and len(head) < ROUTE_HEAD_BYTES:
            chunk = await reader.read(ROUTE_HEAD_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        return head

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Relay until EOF. Once `delay` was set, chunks go through a sender task that forwards each
        `delay` seconds after it was read, in order; the tail still waiting is sent before the EOF ends the link."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(DELAY_QUEUE)
        sender: asyncio.Task[None] | None = None
        try:
            while data := await reader.read(65536):
                delay = self.delay
                if sender is None and delay <= 0:
                    writer.write(data)  # the undelayed path, as before delay existed
                    await writer.drain()
                    continue
                if sender is None:
                    pump = asyncio.current_task()
                    assert pump is not None
                    sender = asyncio.ensure_future(self._send(queue, writer, pump))
                await queue.put((loop.time() + max(delay, 0.0), data))
            if sender is not None:
                await queue.put(None)
                await sender
        except OSError:
            pass
        finally:
            if sender is not None:
                sender.cancel()

    @staticmethod
    async def _send(
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
        pump: asyncio.Task[None],
    ) -> None:
        """Forward each queued chunk once its time has come; a failed write ends the pump, hence the link."""
        loop = asyncio.get_running_loop()
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except OSError:
            pump.cancel()

    async def _drop(self, target: int | None) -> int:
        links = [link for link in self._live if target is None or link.target == target]
        for link in links:
            link.client.transport.abort()
            link.upstream.transport.abort()
        return len(links)

    async def _half_open(self, target: int) -> int:
        links = [link for link in self._live if link.target == target]
        for link in links:
            # all in one step of the loop: no pump runs again between the pause and the cancel
            link.held = True
            link.upstream.transport.pause_reading()  # not even into our buffer: the instance's sends back up
            self._live.discard(link)
            self._held.add(link)
            for pump in link.pumps:
                pump.cancel()
            link.client.transport.abort()
        return len(links)

    async def _release(self, target: int | None) -> int:
        links = [link for link in self._held if target is None or link.target == target]
        for link in links:
            self._held.discard(link)
            link.upstream.transport.abort()
        return len(links)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop(None)
        await self._release(None)
        for task in self._tasks:  # also those still connecting upstream, which no drop reaches
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=PROXY_TIMEOUT / 2)

    def __enter__(self) -> LoopbackProxy:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.close()
