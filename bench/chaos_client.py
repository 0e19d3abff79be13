"""Simulated users for the chaos checker: Solara's real websocket protocol, no browser.

A browser is too heavy to run 50-100 of on a small machine while faults kill and pause
instances, and a browser's history of what it saw is hard to get at. A ``User`` here speaks the
Jupyter kernel protocol over Solara's websocket, sending what ``main-vuetify.js`` sends, to
``bench/chaos_app.py``, and appends what it did and what the server answered to a shared
history (a list of ``Record``), which the checker judges afterwards. Many users share one
asyncio loop; every wait is bounded, so a paused or dead instance shows up as a timeout or a
disconnect in the history and never as a hang.

The reconnect follows the browser's state machine (``main-vuetify.js``, "Reconnect state
machine"): probe ``app-status`` on a fresh ``solara.control`` comm, then

- ``started`` (the kernel is still live on this instance): RESUME, as ``widgetManager.fetchAll()``
  does: ``comm_info_request`` for target ``jupyter.widget``, then ``{"method": "request_state"}``
  to every widget comm listed; each widget answers with an ``update`` carrying its full state.
- not started and ``canRecover``: REMOUNT: ``run`` the app; the restored page arrives as
  ``comm_open`` messages.
- otherwise the browser gives up and the person refreshes: a new kernel id (same cookie).

Smoke run: ``python bench/chaos_client.py --url http://127.0.0.1:PORT --users 5 --seconds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, cast

from solara.server.kernel import deserialize_binary_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Kind = Literal["connect", "restore", "send", "ack", "timeout", "disconnect", "error"]
COOKIE = "solara-session-id"
WIDGET_TARGET = "jupyter.widget"
DEFAULT_KEYS = ("a", "b", "c")


class Record(TypedDict, total=False):
    """One event in a user's history: a plain dict (cheap to append, JSON as it is, and the
    checker adds records of its own to the same list); a key that does not apply is absent.

    Every record has ``t`` (time.monotonic()), ``user`` (the uid) and ``kind``; then

    - connect: ``attempt`` (1 for the first try after a loss), ``kernel`` (the kernel id used).
    - restore: ``values`` (a, b, c as the page shows them), ``seq``, ``result`` (the app's
      ``restore`` field: what this kernel's restore did), ``generation``, ``instance``,
      ``version``, ``live`` (app-status ``started``: the kernel was still running),
      ``can_recover``, ``last_restore`` (app-status ``lastRestore.status``), ``connect_t`` (when
      this connection attempt began; acks before it belong to the previous connection) and
      ``wait_ms`` (from then until the state was known).
    - send: ``seq``, ``set`` (the values the command sets). ack: ``seq``, ``latency_ms``, and
      what the state widget showed with it: ``values``, ``instance``, ``generation`` and
      ``handled_ms`` (how long the instance's event handler took: the round trip less queueing).
    - timeout: the ``seq`` not acknowledged in time (the connection is then dropped).
    - disconnect (a connection that had restored was lost), error (a connect attempt failed):
      ``detail``. The error of a page the instance cannot recover (``detail`` starts
      ``refresh:``) also has ``live``, ``can_recover``, ``last_restore`` and the abandoned
      ``kernel``: the person reloads, and the next connect names the new kernel id.
    """

    t: float
    user: int
    kind: Kind
    seq: int
    set: dict[str, str]
    values: dict[str, str]
    result: str | None
    generation: int | None
    instance: str
    version: int
    live: bool
    can_recover: bool
    last_restore: str | None
    connect_t: float
    wait_ms: float
    latency_ms: float
    handled_ms: float
    attempt: int
    kernel: str
    detail: str


class Broken(Exception):
    """The connection can no longer be trusted (closed, or an answer did not come in time)."""


class Refresh(Broken):
    """The instance cannot recover this page (already recorded): the person reloads it."""


def message(msg_type: str, content: dict[str, Any], session: str) -> str:
    """One Jupyter shell message as Solara's page sends it (``session`` is the page id)."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "username": "chaos",
        "session": session,
        "msg_type": msg_type,
        "version": "5.3",
        "date": "",
    }
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "buffers": [],
            "channel": "shell",
        }
    )


def ws_url(url: str, kernel_id: str, page_id: str) -> str:
    """The kernel channel URL behind an ``http://host:port`` base URL (or a ``ws://`` one)."""
    base = url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[len("http") :]
    return f"{base}/jupyter/api/kernels/{kernel_id}/channels?session_id={page_id}"


class User:
    """One simulated person on one page: connects, edits, reconnects, and records all of it.

    The kernel id and the session cookie are chosen once and kept across reconnects (and
    across calls to ``run``), as a browser tab keeps them; so is the page id. Setting ``paused``
    stops new commands while the connection is still read (a test lets the write-behind flush
    before it kills an instance; ``acked == n`` says nothing is in flight), and ``stop()`` ends
    ``run`` early as if ``stop_at`` had come. Both are for the loop's own thread.
    """

    def __init__(
        self,
        uid: int,
        url: str,
        rng: random.Random,
        history: list[Record],
        *,
        keys: Sequence[str] = DEFAULT_KEYS,
        think: tuple[float, float] = (0.05, 0.4),
        ack_timeout: float = 5.0,
        connect_timeout: float = 15.0,
        max_attempts: int = 60,
        backoff: tuple[float, float] = (0.1, 1.0),
        session: tuple[str, str] | None = None,
    ) -> None:
        self.uid = uid
        self.url = url
        self.rng = rng
        self.history = history
        self.keys = tuple(keys)
        self.think = think
        self.ack_timeout = ack_timeout
        # a fresh instance restores and renders before it answers; 100 users at once on 2 cores
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        # (kernel id, cookie): given, so the checker can read the session from Redis itself
        self.kernel_id, self.cookie = session or (str(uuid.uuid4()), secrets.token_urlsafe(16))
        self.page_id = uuid.uuid4().hex
        self.paused = False
        self.n = 0  # the last command's seq: increases for the user's whole life, never reused
        self.acked = 0  # the last acknowledged seq
        self.stop_at = 0.0
        # per connection
        self._ws: ClientConnection | None = None
        self._control = ""
        self._control_replies: list[dict[str, Any]] = []
        self._comm_info: dict[str, Any] | None = None
        self._widgets: dict[str, dict[str, Any]] = {}
        self._answered: set[str] = set()  # widget comms that sent an update since request_state
        self._by_description: dict[str, str] = {}  # "cmd"/"state" -> comm id
        self.state: dict[str, Any] = {}  # the state widget's JSON, as last seen

    # -- the session ---------------------------------------------------------------------

    async def run(self, stop_at: float) -> None:
        """Connect, then edit until ``stop_at`` (time.monotonic()); reconnect after any loss.

        A command in flight at ``stop_at`` still gets up to ``ack_timeout`` for its answer, so a
        history does not end on a send nobody waited for. Gives up (an ``error`` record) after
        ``max_attempts`` failed connects in a row.
        """
        self.stop_at = stop_at
        attempt = 0
        while time.monotonic() < self.stop_at:
            attempt += 1
            connected = False
            try:
                await self._connect(attempt)
                connected, attempt = True, 0
                await self._work()
            except Refresh:
                pass
            except Exception as exc:  # any failure is history, then a reconnect
                kind: Kind = "disconnect" if connected else "error"
                self._record(kind, detail=_describe(exc))
            finally:
                await self._close()
            if time.monotonic() >= self.stop_at:
                return
            if attempt >= self.max_attempts:
                self._record("error", detail=f"gave up after {attempt} connect attempts")
                return
            low, high = self.backoff
            delay = min(high, low * 2 ** max(0, attempt - 1)) * self.rng.uniform(0.5, 1.0)
            await asyncio.sleep(max(0.0, min(max(low, delay), self.stop_at - time.monotonic())))

    def stop(self) -> None:
        """End ``run`` now: after the command in flight, or at once when none is."""
        self.stop_at = time.monotonic()

    async def _work(self) -> None:
        while True:
            low, high = self.think
            think_until = min(time.monotonic() + self.rng.uniform(low, high), self.stop_at)
            # reading while thinking: a dead socket or a stop shows up within a think time
            await self._read_until(lambda: time.monotonic() >= self.stop_at, think_until)
            if time.monotonic() >= self.stop_at:
                return
            if not self.paused:
                await self._command()

    async def _command(self) -> None:
        """Set 1-3 keys in one event and wait for the state widget to show its seq."""
        cmd = self._by_description.get("cmd")
        if cmd is None:
            raise Broken("the cmd widget is gone")
        self.n += 1
        seq = self.n
        chosen = self.rng.sample(self.keys, self.rng.randint(1, len(self.keys)))
        values = {key: f"u{self.uid}-{seq}" for key in sorted(chosen)}
        command = json.dumps({"seq": seq, "set": values})
        sent = self._record("send", seq=seq, set=values)["t"]
        update = {"method": "update", "state": {"value": command}, "buffer_paths": []}
        await self._send("comm_msg", {"comm_id": cmd, "data": update})
        if not await self._read_until(lambda: self.state.get("seq") == seq, sent + self.ack_timeout):
            self._record("timeout", seq=seq)
            raise Broken(f"no ack for seq {seq} within {self.ack_timeout} s")
        self.acked = seq
        self._record(
            "ack",
            seq=seq,
            latency_ms=(time.monotonic() - sent) * 1000,
            values=self._values(),
            instance=self.state.get("instance"),
            generation=self.state.get("generation"),
            handled_ms=self.state.get("handled_ms"),
        )

    # -- connecting and restoring --------------------------------------------------------

    async def _connect(self, attempt: int) -> None:
        start = time.monotonic()
        deadline = start + self.connect_timeout
        self._reset()
        self._ws = await asyncio.wait_for(
            connect(
                ws_url(self.url, self.kernel_id, self.page_id),
                additional_headers={"Cookie": f"{COOKIE}={self.cookie}"},
                open_timeout=self.connect_timeout,
                close_timeout=2.0,
                ping_interval=None,  # our own bounded waits notice a silent instance
                compression=None,  # CPU: a hundred users share two cores with the fleet
                proxy=None,  # loopback: never an HTTP proxy from the environment
                max_size=None,
            ),
            self.connect_timeout,
        )
        self._record("connect", attempt=attempt, kernel=self.kernel_id)
        self._control = uuid.uuid4().hex
        await self._send("comm_open", {"comm_id": self._control, "target_name": "solara.control", "data": {}})
        status = await self._control_call({"method": "app-status"}, "app-status", deadline)
        live = bool(status.get("started"))
        can_recover = bool(status.get("canRecover"))
        last = (status.get("lastRestore") or {}).get("status")
        if live:
            await self._fetch_all(deadline)  # RESUME
        elif can_recover:  # REMOUNT
            run = {"method": "run", "args": {"path": "", "appName": "__default__"}}
            await self._control_call(run, "finished", deadline)
        else:
            # the browser's GIVE UP: the refresh dialog; the person reloads, which is a new
            # kernel (same cookie), so the next restore is a miss the checker must not blame
            self._record(
                "error",
                live=False,
                can_recover=False,
                last_restore=last,
                kernel=self.kernel_id,
                detail="refresh: app-status started=false canRecover=false",
            )
            self.kernel_id, self.page_id = str(uuid.uuid4()), uuid.uuid4().hex
            raise Refresh()
        if not self.state or "cmd" not in self._by_description:
            raise Broken(f"no cmd/state widget on the page (live={live})")
        self._record(
            "restore",
            values=self._values(),
            seq=self.state.get("seq"),
            result=self.state.get("restore"),
            generation=self.state.get("generation"),
            instance=self.state.get("instance"),
            version=self.state.get("version"),
            live=live,
            can_recover=can_recover,
            last_restore=last,
            connect_t=start,
            wait_ms=(time.monotonic() - start) * 1000,
        )

    async def _fetch_all(self, deadline: float) -> None:
        """What ``widgetManager.fetchAll()`` does: list the widget comms, ask each for its state."""
        await self._send("comm_info_request", {"target_name": WIDGET_TARGET})
        if not await self._read_until(lambda: self._comm_info is not None, deadline):
            raise Broken("no comm_info_reply")
        assert self._comm_info is not None
        ids = [cid for cid, info in self._comm_info.items() if info.get("target_name") == WIDGET_TARGET]
        self._answered.clear()
        for cid in ids:
            await self._send("comm_msg", {"comm_id": cid, "data": {"method": "request_state"}})
        # the kernel handles messages in order, so all answers come; a comm closed meanwhile
        # (a re-render) never answers, hence the check that cmd and state are known instead
        complete = await self._read_until(lambda: self._answered.issuperset(ids), deadline)
        if not complete and not ("cmd" in self._by_description and self.state):
            raise Broken(f"{len(ids) - len(self._answered & set(ids))} widgets did not send state")

    async def _control_call(self, data: dict[str, Any], method: str, deadline: float) -> dict[str, Any]:
        self._control_replies.clear()
        await self._send("comm_msg", {"comm_id": self._control, "data": data})
        found: list[dict[str, Any]] = []

        def answered() -> bool:
            found.extend(r for r in self._control_replies if r.get("method") == method)
            self._control_replies.clear()
            return bool(found)

        if not await self._read_until(answered, deadline):
            raise Broken(f"no {method!r} on the control comm")
        return found[0]

    # -- the wire ------------------------------------------------------------------------

    async def _send(self, msg_type: str, content: dict[str, Any]) -> None:
        if self._ws is None:
            raise Broken("not connected")
        await self._ws.send(message(msg_type, content, self.page_id))

    async def _read_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Handle messages until ``done()`` (True) or ``deadline`` (False); a closed socket raises."""
        ws = self._ws
        if ws is None:
            raise Broken("not connected")
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)  # recv is cancel-safe
            except asyncio.TimeoutError:
                return done()
            self._handle(json.loads(raw) if isinstance(raw, str) else deserialize_binary_message(raw))
        return True

    def _handle(self, msg: dict[str, Any]) -> None:
        msg_type = msg.get("header", {}).get("msg_type")
        content = msg.get("content") or {}
        comm_id = content.get("comm_id")
        if msg_type == "comm_open" and content.get("target_name") == WIDGET_TARGET:
            self._widget_state(comm_id, (content.get("data") or {}).get("state") or {})
        elif msg_type == "comm_msg":
            data = content.get("data") or {}
            if comm_id == self._control:
                self._control_replies.append(data)
            elif data.get("method") == "update":  # echo_update only echoes what a client set
                self._answered.add(comm_id)
                self._widget_state(comm_id, data.get("state") or {})
        elif msg_type == "comm_close":
            self._widgets.pop(comm_id, None)
            for description, known in list(self._by_description.items()):
                if known == comm_id:
                    del self._by_description[description]
        elif msg_type == "comm_info_reply":
            self._comm_info = content.get("comms") or {}

    def _widget_state(self, comm_id: str, state: dict[str, Any]) -> None:
        widget = self._widgets.setdefault(comm_id, {})
        widget.update(state)
        description = widget.get("description")
        if description in ("cmd", "state"):
            self._by_description[description] = comm_id  # a re-render's new widget replaces the old
        if description == "state" and "value" in state and state["value"]:
            self.state = json.loads(state["value"])

    async def _close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 3.0)
            except Exception:  # closing a dead socket: nothing left to learn
                ws.transport.abort()

    def _reset(self) -> None:
        self._control = ""
        self._control_replies.clear()
        self._comm_info = None
        self._widgets.clear()
        self._answered.clear()
        self._by_description.clear()
        self.state = {}

    def _values(self) -> dict[str, str]:
        return {key: self.state.get(key, "") for key in self.keys}

    def _record(self, kind: Kind, **fields: Any) -> Record:
        record = cast(Record, {"t": time.monotonic(), "user": self.uid, "kind": kind, **fields})
        self.history.append(record)
        return record


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"closed: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def make_users(url: str, n: int, seed: int, history: list[Record], **options: Any) -> list[User]:
    """``n`` users whose random choices follow from ``seed`` alone (one rng each, by uid)."""
    return [User(uid, url, random.Random(f"{seed}:{uid}"), history, **options) for uid in range(n)]


async def run_users(url: str, n: int, seed: int, duration: float, history: list[Record]) -> None:
    """Run ``n`` users on this loop for ``duration`` seconds, appending to ``history``."""
    stop_at = time.monotonic() + duration
    await asyncio.gather(*(user.run(stop_at) for user in make_users(url, n, seed, history)))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(history: Sequence[Record]) -> str:
    """Counts by kind, restores by result, ack latency: enough to tell a smoke run worked."""
    kinds = Counter(record["kind"] for record in history)
    restores = Counter(
        f"{record.get('result')}{'/live' if record.get('live') else ''}"
        for record in history
        if record["kind"] == "restore"
    )
    latencies = [record["latency_ms"] for record in history if "latency_ms" in record]
    lines = [
        "records: " + ", ".join(f"{kind}={count}" for kind, count in sorted(kinds.items())),
        "restores: " + ", ".join(f"{result}={count}" for result, count in sorted(restores.items())),
        f"sends={kinds['send']} acks={kinds['ack']} timeouts={kinds['timeout']}"
        f" disconnects={kinds['disconnect']} errors={kinds['error']}",
        f"ack latency ms: p50={percentile(latencies, 50):.1f} p99={percentile(latencies, 99):.1f}",
    ]
    errors = Counter(record.get("detail") for record in history if record["kind"] in ("error", "disconnect"))
    lines += [f"  {count}x {detail}" for detail, count in errors.most_common(5)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://host:port of an instance or the proxy")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    history: list[Record] = []
    asyncio.run(run_users(args.url, args.users, args.seed, args.seconds, history))
    print(summary(history))


if __name__ == "__main__":
    main()
