"""The only module that touches Solara's server internals.

Activation (automatic when an app imports solara_persisted inside a Solara server with
``SOLARA_STATE_BACKEND`` set) takes over the ``SOLARA_STATE_*`` settings from Solara's own
engine and leaves that one inert, then hooks the seams Solara offers but does not document:

- ``solara.lab.on_kernel_start``: every new kernel gets a ``KernelPersistence`` in its
  ``state_persistence`` (and ``state_flush_worker``) slot. No I/O happens there: the callback
  holds Solara's global init lock, and a takeover in it would serialise every new connection.
  The takeover runs on the connection's own thread when the client first asks for anything.
- ``new_epoch()``: Solara's call when a reconnect reuses a live kernel; a kernel another
  instance took over meanwhile is closed as superseded so the retry restores it fresh.
- ``state_persistence.pop_restored``: Solara asks it for a value the first time a reactive is
  read in a kernel, before the first render; that is where restored values are installed (no
  listener fires) and where the change listener that marks keys dirty is attached.
- ``solara.state.persist.register_persisted_reactive`` (wrapped from import on, active or not):
  every reactive declared with Solara's own ``persist=True`` / ``PersistConfig`` gets an untyped
  spec under its persist key, which is also its storage key, so ours persists it like any spec.
- ``recovery_failed`` / ``last_restore`` / ``generation`` / ``disabled``: read by Solara's
  app-status reply, which decides between a soft re-mount and the refresh dialog.
- ``close()``: called by Solara outside the kernel lock with ``context.close_reason`` set.

The ``/resourcez`` route is replaced by one whose ``state`` block is ours, the tab-close beacon
is checked against the session cookie before it may delete state, and every page gets a small
banner script that shows the client's give-up verdict (Solara's vuetify-3 page does not).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio.to_thread
import attrs

from .config import Settings, unknown_settings
from .engine import Engine, Restored
from .errors import ConfigError, SnapshotBusy
from .events import CloseReason, RestoreResult, quote
from .metrics import CONTENT_TYPE, render
from .restore_info import RestoreInfo, run_callbacks
from .spec import key_from_storage_key, persist_true_spec, registry
from .startup import refuse, server_program
from .stats import bearer_matches
from .worker import Session

logger = logging.getLogger("solara.state")

#: Solara versions whose internals this module was tested against: [first, last).
TESTED_SOLARA = ((1, 58), (1, 65))
#: Bound on the whole shutdown drain (one batched pass over every session).
DRAIN_TIMEOUT = 5.0
#: The pre-stop drain's route (POST, bearer token), its default and largest ``timeout`` (seconds).
DRAIN_PATH = "/_solara_persisted/drain"
DRAIN_DEFAULT_TIMEOUT = 10.0
DRAIN_MAX_TIMEOUT = 120.0
#: How long the writer waits for a kernel to finish an event before retrying it later (seconds).
SNAPSHOT_WAIT = 0.01
#: A storage key absent from a kernel's user_dicts (None is a value).
_UNREAD = object()

_lock = threading.Lock()
_engine: Engine | None = None
_undo: list[Callable[[], None]] = []  # what deactivate() reverts, newest last
_live_kernels: collections.Counter[str] = collections.Counter()  # live kernels per session cookie
_reported_off = False  # "persistence is off" is said once per process
_draining = threading.Event()  # set by the pre-stop drain: not ready, no new connections
#: Restore results whose kernel holds the session's state as its page shows it.
_HOLDING = (RestoreResult.SUCCESS, RestoreResult.FRESH_SCHEMA, RestoreResult.MISS)
#: The ASGI scope key holding when a websocket was accepted (time.time(), taken before the 101).
_OPENED_SCOPE_KEY = "solara_persisted.opened"
#: When the connection whose thread runs this code was accepted; None off a connection's thread.
_connection_opened: ContextVar[float | None] = ContextVar("solara_persisted_connection_opened", default=None)


def check_solara_version(version: str) -> None:
    """Refuse a Solara release outside the tested range: the seams here are not public API."""
    try:
        parsed = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        parsed = ()
    first, last = TESTED_SOLARA
    if len(parsed) != 2 or not first <= parsed < last:
        raise ConfigError(
            "solara",
            f"solara {version} is outside the range solara-persisted is tested with "
            f"({'.'.join(map(str, first))} up to, not including, {'.'.join(map(str, last))})",
            "install a solara release in that range, or a solara-persisted release that supports yours",
        )


def adopt_persist_true() -> None:
    """Persist the reactives of Solara's own API too: each one gets an untyped spec in our registry.

    Those Solara registered before this import are adopted now, and every later one as Solara
    registers it (its ``register_persisted_reactive`` is wrapped, whether our engine is active or
    not), so a key declared both ways is refused at import in either order. Idempotent.
    """
    from solara.state import derive
    from solara.state import persist as builtin

    with _lock:
        builtin_register = builtin.register_persisted_reactive
        if getattr(builtin_register, "adopts_persist_true", False):
            return

        def register_persisted_reactive(
            key: str, config: Any, reactive: Any, source: tuple[str, int, int], derived: bool
        ) -> None:
            spec, origin = _persist_true_spec(key, config, reactive, source)
            registry.refuse_typed(spec)  # before Solara registers a reactive whose declaration fails
            builtin_register(key, config, reactive, source, derived)  # Solara's own checks
            registry.adopt(spec, origin)

        register_persisted_reactive.adopts_persist_true = True  # type: ignore[attr-defined]
        builtin.register_persisted_reactive = register_persisted_reactive
    for key, (config, ref) in builtin.persisted_reactives().items():
        reactive = ref()
        if reactive is not None:
            known = derive._registry.get(key)  # (definition site, reactive)
            spec, origin = _persist_true_spec(
                key, config, reactive, known[0] if known else ("<unknown>", 0, 0)
            )
            registry.adopt(spec, origin)


def _persist_true_spec(key: str, config: Any, reactive: Any, source: tuple[str, int, int]) -> tuple[Any, Any]:
    """Our spec of a reactive Solara registers as persisted, from its default and ``PersistConfig``."""
    from solara._stores import StoreValue

    inner = getattr(reactive._storage, "_storage", reactive._storage)  # mutation detection wraps the store
    default = getattr(inner, "default_value", None)  # a store from a custom factory may keep none
    if isinstance(default, StoreValue):
        default = default.private
    serializer, scope = getattr(config, "serializer", "json"), getattr(config, "scope", "kernel")
    return persist_true_spec(key, default, serializer, source[0], source[1], scope)


def engine() -> Engine | None:
    """The active engine, or None when persistence is off."""
    return _engine


def autostart() -> None:
    """Activate inside a running Solara server when the environment asks for persistence.

    Inside a server without ``SOLARA_STATE_BACKEND`` it says once that persistence is off, so
    an operator who meant to turn it on (or misspelt a setting) is told, not left guessing.
    """
    global _reported_off
    if "solara.server.starlette" not in sys.modules:
        return
    if os.environ.get("SOLARA_STATE_BACKEND"):
        activate()
        return
    with _lock:
        if _reported_off:
            return
        _reported_off = True
    _show_state_logs()
    logger.info(
        "solara-persisted: persistence is off (SOLARA_STATE_BACKEND is unset; set it to redis or memory)"
    )
    for warning in unknown_settings():
        logger.warning(warning)


def activate(settings: Settings | None = None) -> Engine:
    """Start the engine and hook it into this Solara server; idempotent.

    A configuration it must refuse raises ``ConfigError``; in a process started as a server
    (``solara``, ``uvicorn``, ``gunicorn``, ``hypercorn``) it prints the error's one line on stderr
    and exits with ``EXIT_REFUSED`` (3) instead, the code uvicorn itself gives a failed start-up:
    the server would stop either way, but behind a forty-line traceback.
    """
    try:
        return _activate(settings)
    except ConfigError as error:
        if server_program() is None:
            raise
        refuse(error)


def _activate(settings: Settings | None) -> Engine:
    global _engine
    with _lock:
        if _engine is not None:
            return _engine
        import solara

        check_solara_version(solara.__version__)
        if settings is None:
            import solara.server.settings as server_settings

            # `solara run --production` decides the mode in-process, after the environment was read.
            settings = attrs.evolve(Settings.from_env(), production=server_settings.main.mode == "production")
        _show_state_logs()  # first: the engine's start-up warnings are for operators too
        for warning in unknown_settings():
            logger.warning(warning)
        active = Engine(settings)
        _silence_builtin_engine(active)
        active.start()
        _undo.append(solara.lab.on_kernel_start(_on_kernel_start))
        _install_connection_clock()
        _install_message_hook()
        _install_shutdown_hand_off(active)
        _install_routes(active)
        _install_refresh_banner()
        _engine = active
        logger.info(
            "solara-persisted active: backend=%s key ring fingerprint=%s",
            settings.backend,
            active.ring.fingerprint(),
        )
        return active


def deactivate(timeout: float = DRAIN_TIMEOUT) -> None:
    """Drain every session and unhook from Solara (an embedding app's lifespan shutdown, tests)."""
    global _engine
    with _lock:
        active, _engine = _engine, None
        if active is None:
            return
        while _undo:
            _undo.pop()()
        _draining.clear()
    active.drain(timeout)
    active.close()


def _silence_builtin_engine(active: Engine) -> None:
    """Exactly one engine runs: Solara's stays off, its client re-mounts because of ours."""
    import solara.server.settings as server_settings
    import solara.state

    state, kernel = server_settings.state, server_settings.kernel
    saved = (state.backend, state.auto_remount, state.test_eviction, kernel.cull_timeout)
    state.backend = ""
    state.auto_remount = active.settings.auto_remount is not False
    state.test_eviction = active.settings.test_eviction
    solara.state.reset_backend()
    if active.backend.shared:
        # The state outlives a disconnected kernel in the shared store: cull orphans early.
        kernel.cull_timeout = f"{active.settings.orphan_cull_timeout}s"
    # Solara's teardown still logs its own close line for our manager; ours is the true one.
    state_logger = logging.getLogger("solara.state")
    state_logger.addFilter(_drop_builtin_engine_records)

    def restore() -> None:
        state.backend, state.auto_remount, state.test_eviction, kernel.cull_timeout = saved
        state_logger.removeFilter(_drop_builtin_engine_records)

    _undo.append(restore)


def _drop_builtin_engine_records(record: logging.LogRecord) -> bool:
    return f"{os.sep}solara{os.sep}state{os.sep}" not in record.pathname


def _show_state_logs() -> None:
    """``solara run`` shows only errors of the ``solara`` loggers; the state lines are for operators."""
    state_logger = logging.getLogger("solara.state")
    if state_logger.getEffectiveLevel() > logging.INFO:
        state_logger.setLevel(logging.INFO)
    if not state_logger.hasHandlers():  # plain uvicorn or an embedding app configured no logging
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))
        state_logger.addHandler(handler)


def _install_routes(active: Engine) -> None:
    """Put our ``/resourcez`` and a guarded tab-close route in front of Solara's (routes match in order)."""
    from solara.server import kernel_context, server
    from solara.server import starlette as solara_starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    builtin_readyz = server.readyz

    def readyz() -> tuple[dict[str, str], int]:
        # Solara's /readyz stays backend-independent; only a drain (this instance leaving) fails it.
        return ({"status": "draining"}, 503) if _draining.is_set() else builtin_readyz()

    server.readyz = readyz

    builtin_resourcez = solara_starlette.resourcez
    builtin_close = solara_starlette.close

    async def resourcez(request: Request) -> JSONResponse:
        response = await builtin_resourcez(request)
        data = json.loads(bytes(response.body))
        data["state"] = active.state_block(
            verbose=request.query_params.get("verbose") not in (None, "", "0"),
            authorization=request.headers.get("authorization"),
        )
        return JSONResponse(data, status_code=response.status_code)

    def close(request: Request) -> Response:
        # A tab close deletes persisted state, so only the session that owns the kernel may ask,
        # from the page itself. (Solara checks the cookie only while its own engine is on, which
        # ours keeps off.)
        kernel_id = request.path_params["kernel_id"]
        if not request.query_params.get("session_id"):
            return Response("the tab-close beacon needs ?session_id=<page id>\n", status_code=400)
        problem = _cross_site(request)
        if problem:
            logger.warning("refused tab close of kernel=%s: %s", quote(kernel_id[:128]), problem)
            return Response(status_code=403)
        context = kernel_context.contexts.get(kernel_id)
        if context is not None and server.get_session_id_cookie(request.cookies) != context.session_id:
            logger.warning(
                "refused tab close of kernel=%s: the session cookie does not own it", quote(context.id)
            )
            return Response(status_code=200)
        return builtin_close(request)

    async def metrics(request: Request) -> Response:
        body = render(active, authorization=request.headers.get("authorization"), draining=_draining.is_set())
        return Response(body, media_type=CONTENT_TYPE)

    async def drain(request: Request) -> Response:
        problem = _drain_refusal(active.settings.drain_token, request.headers.get("authorization"))
        if problem is not None:
            status, message = problem
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return PlainTextResponse(message + "\n", status_code=status, headers=headers)
        try:
            timeout = float(request.query_params.get("timeout", DRAIN_DEFAULT_TIMEOUT))
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= DRAIN_MAX_TIMEOUT:
            return PlainTextResponse(
                f"timeout must be seconds above 0 and at most {DRAIN_MAX_TIMEOUT:.0f}, e.g. ?timeout=10\n",
                status_code=400,
            )
        report = await anyio.to_thread.run_sync(drain_instance, active, timeout)
        return JSONResponse(report)

    ours = [
        Route("/resourcez", endpoint=resourcez),
        Route("/_solara/api/close/{kernel_id}", endpoint=close, methods=["POST"]),
        Route(DRAIN_PATH, endpoint=drain, methods=["POST"]),
    ]
    if active.settings.metrics:
        ours.append(Route("/metrics", endpoint=metrics))
    routes = solara_starlette.app.router.routes
    routes[0:0] = ours

    def remove() -> None:
        for route in ours:
            routes.remove(route)
        server.readyz = builtin_readyz

    _undo.append(remove)


def _drain_refusal(token: str, authorization: str | None) -> tuple[int, str] | None:
    """Why a drain request is refused (HTTP status, one line), or None when it may run."""
    if not token:
        return 404, "the drain endpoint is off: set SOLARA_STATE_DRAIN_TOKEN on the server to turn it on"
    if not bearer_matches(token, authorization):
        logger.warning("refused a drain request: missing or wrong bearer token")
        return 401, "send Authorization: Bearer <SOLARA_STATE_DRAIN_TOKEN>"
    return None


def drain_instance(active: Engine, timeout: float, reason: str = "pre-stop") -> dict[str, Any]:
    """Hand every session on to the rest of the fleet before this instance dies.

    In this order: report not-ready and refuse new connections; stop every kernel taking client
    messages (each between two events, under its lock); write every session in one bounded,
    batched pass (the writer then stops for good); close every websocket, so browsers reconnect
    at once, through the balancer, to an instance that restores what was just written. A message
    that arrives after its kernel stopped is dropped unanswered: the client never saw it applied,
    and the restore elsewhere shows the state that was written. Runs again harmlessly.

    ``reason`` "shutdown" is uvicorn's SIGTERM (``_install_shutdown_hand_off``): the same, except
    that uvicorn itself closes the websockets right after.
    """
    from solara.server import kernel_context

    started = time.monotonic()
    deadline = started + timeout
    _draining.set()
    contexts = list(kernel_context.contexts.values())
    managers = [
        manager
        for context in contexts
        if isinstance(manager := getattr(context, "state_persistence", None), KernelPersistence)
    ]
    for manager in managers:  # first every kernel, at once: from here on their messages are dropped
        manager.hand_off()
    for manager in managers:  # then an event still being handled ends before the write
        manager.wait_for_event(deadline)
    unwritten = active.drain(max(0.0, deadline - time.monotonic()), reason)
    closed = sum(_close_websockets(context) for context in contexts) if reason == "pre-stop" else 0
    seconds = round(time.monotonic() - started, 3)
    logger.log(
        logging.WARNING if unwritten else logging.INFO,
        "drain reason=%s kernels=%d unwritten=%d websockets_closed=%d seconds=%.3f",
        reason,
        len(managers),
        unwritten,
        closed,
        seconds,
    )
    report = {"kernels": len(managers), "unwritten": unwritten, "websockets_closed": closed, "seconds": seconds}
    return report


def _install_shutdown_hand_off(active: Engine) -> None:
    """On SIGTERM, write every session before uvicorn closes a websocket.

    uvicorn's shutdown closes the websockets first and runs the lifespan shutdown (where Solara
    closes the kernels, and the shutdown flush would run) only once they are gone. By then the
    browsers have reconnected elsewhere and their takeovers fence the late flush out: the last
    debounce window of every session was lost to a plain rolling deploy. The hand-off runs at the
    start of ``Server.shutdown`` instead, off the event loop (bounded by ``DRAIN_TIMEOUT``). Servers
    other than uvicorn keep the lifespan flush alone.
    """
    from uvicorn.server import Server

    builtin_shutdown = Server.shutdown

    async def shutdown(self: Server, *args: Any, **kwargs: Any) -> None:
        await anyio.to_thread.run_sync(drain_instance, active, DRAIN_TIMEOUT, "shutdown")
        await builtin_shutdown(self, *args, **kwargs)

    Server.shutdown = shutdown  # type: ignore[method-assign]

    def remove() -> None:
        Server.shutdown = builtin_shutdown  # type: ignore[method-assign]

    _undo.append(remove)


def _close_websockets(context: Any) -> int:
    """Close the kernel's websockets (the client reconnects elsewhere); how many closed."""
    session = getattr(getattr(context, "kernel", None), "session", None)
    closed = 0
    for ws in list(getattr(session, "websockets", ())):
        try:
            ws.close()
        except Exception as error:  # already gone: nothing to hand on
            logger.debug("drain: closing a websocket of kernel=%s failed: %r", quote(context.id), error)
        else:
            closed += 1
    return closed


def _cross_site(request: Any) -> str | None:
    """Why a request did not come from a page of this site, or None (a beacon always does).

    Browsers send ``Sec-Fetch-Site``, which survives proxies that rewrite ``Host``; ``Origin``
    is compared with the (forwarded) host only for clients that send no ``Sec-Fetch-Site``.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return (
            None if fetch_site in ("same-origin", "none") else f"Sec-Fetch-Site is {quote(fetch_site[:40])}"
        )
    origin = request.headers.get("origin")
    if origin is None:
        return None
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")} - {""}
    if origin == "null" or origin.split("://", 1)[-1].rstrip("/") not in hosts:
        return f"Origin {quote(origin[:100])} is not this site"
    return None


def _install_connection_clock() -> None:
    """Note when each websocket is accepted, and make it known on the connection's own thread.

    Takeovers are ordered by when their connection was opened. The kernel, and so any time read
    there, can start seconds after the accept: a frozen instance, or Solara's kernel thread
    limit, holds the connection's thread back while the client speaks, gives up and reconnects
    elsewhere. The client can send nothing before the 101, so a time taken just before it comes
    before any reconnect that the connection's messages could race. Solara's starlette endpoint
    calls ``server.app_loop`` by name on the connection's thread, with the starlette websocket in
    its wrapper's ``ws``.
    """
    from solara.server import server
    from starlette.websockets import WebSocket

    builtin_accept = WebSocket.accept
    builtin_app_loop = server.app_loop

    async def accept(self: WebSocket, *args: Any, **kwargs: Any) -> None:
        self.scope.setdefault(_OPENED_SCOPE_KEY, time.time())
        await builtin_accept(self, *args, **kwargs)

    async def app_loop(ws: Any, *args: Any, **kwargs: Any) -> None:
        if _draining.is_set():
            # leaving the fleet: no kernel here; the client's retry goes to another instance
            ws.close()
            return
        scope = getattr(getattr(ws, "ws", None), "scope", None)
        opened = scope.get(_OPENED_SCOPE_KEY) if isinstance(scope, dict) else None
        token = _connection_opened.set(opened)
        try:
            await builtin_app_loop(ws, *args, **kwargs)
        finally:
            _connection_opened.reset(token)

    WebSocket.accept = accept  # type: ignore[method-assign]
    server.app_loop = app_loop

    def remove() -> None:
        WebSocket.accept = builtin_accept  # type: ignore[method-assign]
        server.app_loop = builtin_app_loop

    _undo.append(remove)


def _install_message_hook() -> None:
    """Run the takeover when the client's first message arrives, on the connection's thread.

    Solara's websocket loop hands every client message to ``server.process_kernel_messages``
    (looked up by name on each call), inside the kernel's context. A connection that never
    speaks takes nothing over, and a stale kernel drops what it is sent and closes instead.
    """
    from solara.server import kernel_context, server

    builtin = server.process_kernel_messages

    def process_kernel_messages(kernel: Any, msg: dict[str, Any]) -> bool:
        manager = kernel_context.get_current_context().state_persistence
        if isinstance(manager, KernelPersistence) and not manager.on_client_message():
            return True  # dropped: the kernel is closing as superseded (False would mean a tab close)
        return builtin(kernel, msg)

    server.process_kernel_messages = process_kernel_messages

    def remove() -> None:
        server.process_kernel_messages = builtin

    _undo.append(remove)


def _install_refresh_banner() -> None:
    """Append our page script to every page Solara renders: the give-up banner (its vuetify-3 page
    shows none), and during a re-mount a notice instead of Solara's placeholder text."""
    from importlib.resources import files

    from solara.server import server

    script = (
        "<script>\n" + files(__package__).joinpath("client/refresh-banner.js").read_text() + "</script>\n"
    )
    builtin_read_root = server.read_root

    def read_root(*args: Any, **kwargs: Any) -> str | None:
        page = builtin_read_root(*args, **kwargs)
        if page is None:
            return None
        head, end, tail = page.rpartition("</html>")  # Solara's page has no </body>
        return head + script + end + tail if end else page + script

    server.read_root = read_root

    def remove() -> None:
        server.read_root = builtin_read_root

    _undo.append(remove)


def _on_kernel_start() -> None:
    from solara.server import kernel_context
    from solara.state import persist as builtin

    active = _engine
    if active is None:
        return
    # A persist=True reactive in a class body whose key never resolved (stored in a dict there)
    # would never persist: refuse the kernel loudly, as Solara's own engine does at attach.
    builtin._check_pending_resolved()
    context = kernel_context.get_current_context()
    _limit_kernels_per_session(context)
    # One object in both slots: Solara asks the worker slot for new_epoch() on a reconnect.
    context.state_persistence = context.state_flush_worker = KernelPersistence(active, context)


def _limit_kernels_per_session(context: Any) -> None:
    """``SOLARA_KERNEL_MAX_PER_SESSION``: each kernel may create a backend key, so one cookie is bounded.

    Counted per session as kernels start and close, so a connect costs no scan of every kernel
    while Solara's global init lock is held.
    """
    import solara.server.settings as server_settings

    limit = server_settings.kernel.max_per_session
    with _lock:
        live = _live_kernels[context.session_id]
        if limit and live >= limit:
            logger.warning(
                "refused kernel=%s: its session already has %d live kernels (SOLARA_KERNEL_MAX_PER_SESSION)",
                quote(context.id),
                live,
            )
            raise RuntimeError("too many live kernels for this session")
        _live_kernels[context.session_id] = live + 1


def _kernel_closed(session_id: str) -> None:
    with _lock:
        left = _live_kernels[session_id] - 1
        if left > 0:
            _live_kernels[session_id] = left
        else:
            del _live_kernels[session_id]


def _stored_form(store: Any, value: Any) -> Any:
    """A restored value as ``store`` holds one: wrapped, as Solara's mutation detection wraps it."""
    from solara._stores import StoreValue, _PublicValueNotSet, _SetValueNotSet

    if not isinstance(getattr(store, "default_value", None), StoreValue):
        return value
    return StoreValue(
        private=value,
        public=_PublicValueNotSet(),
        get_traceback=None,
        set_value=_SetValueNotSet(),
        set_traceback=None,
    )


def simulate_failover() -> None:
    """Development only: drop this kernel as a dying instance would, so the reconnect restores it.

    The kernel is closed with reason ``evicted`` (its state is flushed and left), the browser's
    websocket drops, and the reconnect meets a kernel id this process no longer holds: exactly
    the restore path of a real failover, in one ``solara run``.
    """
    from solara.server import kernel_context

    active = _engine
    if active is None or not active.settings.test_eviction or active.settings.production:
        raise ConfigError(
            "SOLARA_STATE_TEST_EVICTION",
            "simulated failover is off (it needs persistence on, this setting true and SOLARA_MODE=development)",
            "run the app with SOLARA_STATE_TEST_EVICTION=true SOLARA_MODE=development",
        )
    context = kernel_context.get_current_context()
    # close() takes the kernel lock, which the calling event handler may hold: close from a thread.
    threading.Thread(
        target=context.close,
        kwargs={"reason": CloseReason.EVICTED.value},
        name=f"evict-{context.id}",
        daemon=True,
    ).start()


def _current_manager() -> KernelPersistence | None:
    """The calling kernel's persistence, or None outside a kernel or with persistence off."""
    from solara.server import kernel_context

    if not kernel_context.has_current_context():
        return None
    manager = kernel_context.get_current_context().state_persistence
    return manager if isinstance(manager, KernelPersistence) else None


def checkpoint(timeout: float = 5.0) -> bool:
    """Write this kernel's changed persisted values now and wait for the store's acknowledgement.

    For the moment before a risky step (a payment, a long job): True when everything changed so
    far is stored, False when it could not be within ``timeout`` (backend down, this copy fenced
    out by another instance, persistence off). Call it from the kernel's own thread.
    """
    manager = _current_manager()
    if manager is None or manager.disabled:
        return False
    return manager.checkpoint(timeout)


def forget_session() -> bool:
    """Forget what this browser session shares across its tabs (``scope="session"``): a logout.

    The stored values are deleted, this page's session-scoped reactives go back to their
    defaults, and no change made before the call (another tab's pending write, a paused
    instance) is written after it. Other open tabs keep what they show until they reload.
    Kernel-scoped values are untouched. True once the store acknowledged; False when it could
    not (backend down, persistence off). Call it from the kernel's own thread.
    """
    manager = _current_manager()
    if manager is None:
        return False
    return manager.forget_session()


def restore_info() -> RestoreInfo | None:
    """What this kernel's restore did (result, keys, migrations, age), for a component to show;
    None outside a kernel or with persistence off. Call it from the kernel's own thread."""
    manager = _current_manager()
    if manager is None:
        return None
    manager.ensure_restored()
    return manager.info


def state_generation() -> int | None:
    """This kernel's fencing generation, for an app's own external writes; None without write rights."""
    manager = _current_manager()
    if manager is None or manager.disabled:
        return None
    return manager.generation or None


#: How often the shared status watcher reads the status while a page shows ``PersistenceStatus``.
STATUS_POLL_SECONDS = 1.0


def persistence_status() -> str:
    """``off``, ``healthy`` or ``degraded``: the ``status`` ``/resourcez`` reports, read without I/O."""
    active = _engine
    return "off" if active is None else str(active.state_block()["status"])


class _StatusWatcher:
    """Polls the status while pages watch it; each page is told only when its shown status changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: dict[object, list[Any]] = {}  # token -> [kernel context, setter, status shown]
        self._thread: threading.Thread | None = None

    def watch(self, context: Any, shown: str, set_status: Callable[[str], None]) -> Callable[[], None]:
        from solara.server import kernel_context

        token = object()
        with self._lock:
            self._pages[token] = [context, set_status, shown]
            if self._thread is None:
                with kernel_context.without_context():  # shared: it must not pin this page's kernel
                    self._thread = threading.Thread(target=self._run, name="persistence-status", daemon=True)
                self._thread.start()

        def unwatch() -> None:
            with self._lock:
                self._pages.pop(token, None)

        return unwatch

    def _run(self) -> None:
        while True:
            time.sleep(STATUS_POLL_SECONDS)
            with self._lock:
                if not self._pages:
                    self._thread = None
                    return
                pages = list(self._pages.items())
            status = persistence_status()
            for token, page in pages:
                context, set_status, shown = page
                if shown == status:
                    continue
                page[2] = status
                try:
                    with context:
                        set_status(status)
                except Exception as error:  # a page closing meanwhile: it stops watching
                    logger.debug(
                        "persistence status not shown on kernel=%s: %r", getattr(context, "id", "?"), error
                    )
                    with self._lock:
                        self._pages.pop(token, None)


_status_watcher = _StatusWatcher()


def watch_persistence_status(shown: str, set_status: Callable[[str], None]) -> Callable[[], None] | None:
    """Tell the calling page (``set_status`` in its kernel context) when the status it shows changes;
    returns the cleanup. None with persistence off: activation happens at start-up, before any page."""
    from solara.server import kernel_context

    if _engine is None:
        return None
    return _status_watcher.watch(kernel_context.get_current_context(), shown, set_status)


class KernelPersistence:
    """One kernel's persistence, in the slot Solara consults: restore at first use, writes on change.

    The takeover runs once, on the connection's own thread, when the client's first message
    arrives or a reactive is first read (``ensure_restored``). What Solara reads on its status and
    close paths (``generation``, ``last_restore``, ``recovery_failed``, ``close``) never starts
    backend I/O: a connection that sends nothing, or closes at once, takes nothing over.
    """

    def __init__(self, active: Engine, context: Any) -> None:
        self._engine = active
        self._context = context
        self._kernel_id: str = context.id
        self._session_id: str = context.session_id
        #: When the kernel's first connection here was accepted: takeovers are ordered by it.
        self._opened = _connection_opened.get() or time.time()
        self._lock = threading.Lock()
        self._restoring = threading.Lock()
        self._closed = False
        self._stores: dict[str, Any] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._values: dict[str, Any] = {}
        self._muted: set[str] = set()
        self._session: Session | None = None
        self._restored: Restored | None = None
        self._handed_off = False
        self.info: RestoreInfo | None = None
        self.disabled = False

    # -- the takeover ---------------------------------------------------------------------------

    def ensure_restored(self) -> Restored:
        """The takeover's outcome, run by the first thread that needs it (bounded by the backend's timeout).

        That thread then runs the app's ``on_restore`` callbacks in the kernel's context.
        """
        restored = self._restored
        if restored is not None:
            return restored
        with self._restoring:  # one takeover per kernel, whichever thread asks first
            restored = self._restored
            if restored is not None:
                return restored
            started = time.perf_counter()
            # the connection that asks (a later one than the kernel's first, if that one never spoke)
            opened = _connection_opened.get() or self._opened
            restored = self._engine.restore(self._kernel_id, self._session_id, opened)
            self.info = RestoreInfo.of(
                restored, duration=time.perf_counter() - started, instance=self._engine.instance_name
            )
            with self._lock:
                self._values = dict(restored.values)
                self._restored = restored
                closed = self._closed
            if not restored.generation:
                self.disabled = True  # a refused kernel id, state signed with other secrets, or superseded
                if restored.cause == "superseded":
                    self._close_superseded()  # an old connection's message, processed late: a newer one holds it
            elif closed and getattr(self._context, "close_reason", None) == CloseReason.PAGE_CLOSE:
                self._engine.release(restored)  # the tab closed while the takeover ran
            elif not closed and not restored.claimed and not restored.bailed_out:
                # Nothing is held in Redis for this page (Redis was unreachable or full): the
                # writer claims the session as soon as Redis takes it, so an earlier holder's late
                # write cannot bring back what this page never showed. (A bail-out shows the
                # refresh dialog: its page claims at its first change, if it makes one.)
                self._open_session()
            elif not closed and restored.resign:
                # Values verified under a retiring key (or read from Solara's format) are written
                # again now, not at the page's first change: every reload refreshes their TTL, so
                # they would never age out before the old key is dropped.
                self._open_session()
        with self._context:
            run_callbacks(self.info)
        return restored

    def on_client_message(self) -> bool:
        """A message from the client: restore if this is the first; False if it must be dropped.

        A stale kernel (fenced out: another instance holds newer state) never serves its old
        values: the message is proof the page is live here, so the kernel is closed as
        superseded and the client's reconnect restores the newer state.
        """
        if self._handed_off:
            return False  # drained: what was written is what the next instance restores
        restored = self.ensure_restored()
        if restored.cause == "superseded":
            return False  # closing: a connection opened later holds the session
        session = self._session
        if session is not None and session.stale:
            self._close_superseded()
            return False
        return True

    def hand_off(self) -> None:
        """The drain: take no client message from now on (the message hook drops them, under the
        kernel's lock). Set without that lock: a busy kernel re-takes it for message after message
        of its backlog, and a drain waiting its turn for each of a hundred kernels ran out of time."""
        self._handed_off = True

    def wait_for_event(self, deadline: float) -> None:
        """Wait (until ``deadline``, monotonic) for the event being handled, if any: Solara handles
        each message under the kernel's lock, so once it is free the kernel's values are one state."""
        lock = self._context.lock
        if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            lock.release()

    # -- what Solara reads (never backend I/O) --------------------------------------------------

    @property
    def recovery_failed(self) -> bool:
        """A bail-out shows the refresh dialog, except in a storm, where a fresh soft re-mount is kinder."""
        restored = self._restored
        if restored is None or not restored.bailed_out:
            return False
        if self._engine.bailout_storm():
            logger.warning(
                "bail-out storm: kernel=%s re-mounts fresh instead of showing the refresh dialog",
                quote(self._kernel_id),
            )
            return False
        return True

    @property
    def generation(self) -> int:
        """The write right this kernel holds; 0 before the takeover and when it holds none."""
        session = self._session
        if session is not None:
            return 0 if session.stale else session.generation
        restored = self._restored
        return restored.generation if restored is not None else 0

    @property
    def last_restore(self) -> dict[str, Any]:
        restored = self._restored
        if restored is None:
            return {"status": "miss", "failedKey": None, "cause": None, "nFields": 0}
        status = restored.result
        if status not in (RestoreResult.SUCCESS, RestoreResult.BAILOUT, RestoreResult.FRESH_SCHEMA):
            status = RestoreResult.MISS
        return {"status": status, "failedKey": None, "cause": restored.cause, "nFields": len(restored.values)}

    def pop_restored(self, storage_key: str, store: Any) -> tuple[bool, Any]:
        """Solara's first read of a reactive in this kernel: install its restored value, watch it.

        Ours have the storage key ``STORAGE_PREFIX + key``; a ``persist=True`` reactive's storage
        key is its persist key, under which ``adopt_persist_true`` registered its untyped spec.
        """
        key = key_from_storage_key(storage_key)
        if key is None:
            spec = self._engine.registry.get(storage_key)
            if spec is None or not spec.untyped:
                return False, None
            key = storage_key
        self.ensure_restored()  # values must be in place before the first render
        with self._lock:
            found = key in self._values
            value = self._values.pop(key, None)
            if key not in self._stores and not self._closed:  # a read racing close() watches nothing
                self._stores[key] = store
                self._unsubscribe.append(
                    store.subscribe_change(lambda new, old, key=key: self._changed(key, new))
                )
        if found:
            value = _stored_form(store, value)
        return found, value

    # -- writes -----------------------------------------------------------------------------

    def _changed(self, key: str, new: Any) -> None:
        if self.disabled or self._closed or key in self._muted:
            return
        if not self._engine.settings.production:
            self._check_encodes(key, new)
        self._engine.mark_dirty(self._open_session(), key)

    def _check_encodes(self, key: str, value: Any) -> None:
        """Development only: a value the writer could not encode fails at the ``.set()`` that made it,
        naming the key and the path inside it, not later in the writer's log."""
        from solara._stores import StoreValue

        spec = self._engine.registry.resolve(key)
        if spec is not None:
            spec.type_codec.dumps(value.private if type(value) is StoreValue else value)

    def _open_session(self) -> Session:
        restored = self.ensure_restored()
        with self._lock:
            if self._session is None:
                self._session = self._engine.open_session(
                    self._kernel_id,
                    restored,
                    self._snapshot,
                    on_rejected=self._rejected,
                    keys=self._keys,
                )
            return self._session

    def forget_session(self) -> bool:
        restored = self.ensure_restored()
        registry = self._engine.registry
        with self._lock:
            shared = {}
            for key, store in self._stores.items():
                spec = registry.resolve(key)
                if spec is not None and spec.scope == "session":
                    shared[key] = (store, spec)
            self._muted.update(shared)
        try:
            for store, spec in shared.values():
                store.set(_stored_form(store, spec.default()))  # nobody's change: not written
        finally:
            with self._lock:
                self._muted.difference_update(shared)
        return self._engine.forget_shared(restored.address)

    def checkpoint(self, timeout: float) -> bool:
        session = self._session
        if session is None:
            return True  # nothing changed since the restore: the store already holds it all
        return self._engine.writer.flush_now(session, timeout)

    def _snapshot(self, keys: Any) -> dict[str, Any]:
        """The values of ``keys`` between two events, never in the middle of one: Solara handles each
        message under the kernel's lock, so holding it means no handler has set half of its values.
        A kernel busy with a long event is retried shortly (``SnapshotBusy``) instead of waited
        for: the writer serves every kernel of the process."""
        from solara._stores import StoreValue

        lock = getattr(self._context, "lock", None)
        if lock is not None and not lock.acquire(timeout=SNAPSHOT_WAIT):
            raise SnapshotBusy(f"kernel {self._kernel_id} is handling an event", fix="retry after it")
        try:
            # A read value is in the kernel's user_dicts under its storage key: reading it there is
            # what peek() returns, without entering the context (three look-ups per session on the
            # writer's thread). One not there (cleared since) is read the long way, which sets it up.
            scope = self._context.user_dicts
            values, lazy = {}, []
            for key in keys:
                store = self._stores.get(key)
                if store is None:
                    with self._lock:  # not read by the page yet (a re-sign): its value is the restored one
                        store = self._stores.get(key)
                        if store is None:
                            if key in self._values:
                                values[key] = self._values[key]
                            continue
                value = scope.get(store.storage_key, _UNREAD)
                if value is _UNREAD:
                    lazy.append(key)
                else:
                    values[key] = value
            if lazy:
                with self._context:
                    values.update((key, self._stores[key].peek()) for key in lazy)
        finally:
            if lock is not None:
                lock.release()
        # Solara's mutation detection keeps a persist=True value wrapped; its private copy is the value set.
        return {key: v.private if type(v) is StoreValue else v for key, v in values.items()}

    def _keys(self) -> list[str]:
        with self._lock:
            return list(self._stores)

    def _rejected(self, session: Session) -> None:
        """Fenced out: another instance took this kernel over, so this copy is stale for good.

        It never writes again (the writer sees to that). The kernel is closed as superseded: if
        its page is in fact live here, the client reconnects and restores the newer state.
        """
        self.disabled = True
        if self._connected():
            self._engine.events.superseded_while_connected(self._kernel_id)
        self._close_superseded()

    def _close_superseded(self) -> None:
        # close() takes the kernel lock, which the calling thread may hold: close from a thread.
        threading.Thread(
            target=self._context.close,
            kwargs={"reason": CloseReason.SUPERSEDED.value},
            name=f"superseded-{self._kernel_id}",
            daemon=True,
        ).start()

    def _connected(self) -> bool:
        from solara.server import kernel_context

        return kernel_context.PageStatus.CONNECTED in self._context.page_status.values()

    # -- a reconnect that reuses this live kernel ------------------------------------------------

    def new_epoch(self) -> None:
        """A reconnect landed on this still-live kernel: the page will show what the kernel holds,
        so the kernel holds the session again as this newer connection (``Engine.reassert``). A
        copy that is stale (another instance wrote the session since, or a connection opened later
        holds it) is closed as superseded instead; the client's retry then restores it fresh.

        Solara calls this on the reconnect's own thread, before the page is served."""
        restored = self._restored
        if restored is None or not restored.generation:
            return
        session = self._session
        if session is None:
            if restored.result not in _HOLDING:
                return  # a bail-out's page shows the refresh dialog: it holds nothing to re-assert
            session = self._open_session()
        opened = _connection_opened.get() or time.time()
        if self._engine.reassert(session, opened):
            return
        self.disabled = True
        self._context.close(reason=CloseReason.SUPERSEDED.value)
        raise RuntimeError(
            f"kernel {self._kernel_id}: its session is held elsewhere since (written by another instance, "
            "or held by a later connection); its stale copy here is closed and the reconnect restores it fresh"
        )

    # -- close --------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Called by Solara outside the kernel lock, with the close reason set on the context.

        ``timeout`` is Solara's bound for a flush worker's close; ours is bounded by the backend's.
        A kernel that never took over starts no backend I/O here.
        """
        reason = getattr(self._context, "close_reason", "unknown")
        with self._lock:
            first, self._closed = not self._closed, True
            unsubscribe, self._unsubscribe = self._unsubscribe, []
        if first:
            _kernel_closed(self._session_id)
        for stop in unsubscribe:
            stop()
        if reason == CloseReason.SERVER_SHUTDOWN:
            self._engine.drain_once(DRAIN_TIMEOUT)  # the first shutdown close writes every session
        session = self._session
        restored = self._restored
        if session is None and restored is not None and restored.claimed and restored.result in _HOLDING:
            session = self._open_session()  # restored or claimed, never changed: a tab close deletes it
        if session is not None:
            known = CloseReason(reason) if reason in CloseReason.__members__.values() else CloseReason.CULL
            if self.disabled:
                session.stale = True  # no write rights left: never write or delete
            self._engine.close_session(session, known)
