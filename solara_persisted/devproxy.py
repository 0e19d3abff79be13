"""A switchable TCP proxy on loopback: the load balancer of a local fleet.

Used by ``solara-persisted demo --fleet`` (the browser talks to it; a failover switches its
target) and by the end-to-end tests, which need the same thing: one stable address in front of
instances that die, plus the ability to cut every live connection as a balancer does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

PROXY_TIMEOUT = 5.0
T = TypeVar("T")


class LoopbackProxy:
    """A TCP proxy on 127.0.0.1 (or `host`) in its own thread: the fleet's load balancer.

    `target` picks the instance new connections go to (None refuses them); `drop(port)` resets
    the live connections to one instance, as a balancer does when its health check marks that
    instance dead, and `drop_all()` resets every one of them.
    """

    def __init__(self, target: int | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.host = host
        self.port = port  # 0: the OS picks a free one on start()
        self.accepted = 0  # client connections accepted so far (a reconnect shows up here)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        # each live (client, upstream) pair -> the instance port it was connected to
        self._live: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def live_connections(self) -> int:
        return len(self._live)

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
        target = self.target
        try:
            if target is None:
                raise ConnectionRefusedError("no target")
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target), PROXY_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            return  # _handle resets the client
        pair = (client_writer, upstream_writer)
        self._live[pair] = target
        try:
            await asyncio.gather(
                self._pump(client_reader, upstream_writer),
                self._pump(upstream_reader, client_writer),
            )
        finally:
            self._live.pop(pair, None)
            for writer in pair:
                writer.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # one side ending (EOF or error) ends the pair: abort the writer so the other pump stops too
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def _drop(self, target: int | None) -> int:
        pairs = [pair for pair, port in self._live.items() if target is None or port == target]
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        return len(pairs)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop(None)
        for task in self._tasks:  # also those still connecting upstream, which no drop reaches
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=PROXY_TIMEOUT / 2)

    def __enter__(self) -> LoopbackProxy:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.close()
