"""The Redis backend: one hash per kernel, one Lua script per check-then-write verb, hard timeouts.

URL forms (``SOLARA_STATE_URL``):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix://[[user]:password@]/path?db=N``
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]`` (``rediss+sentinel``
  for TLS to the master); the credentials are the master's, sentinels default to port 26379
- ``redis+cluster://[[user]:password@]host[:port]`` (``rediss+cluster``): any node of a Redis Cluster

Every call is bounded by ``SOLARA_STATE_CONNECT_TIMEOUT`` (socket connect and read timeouts, no
client-side retries that could stack up beyond it); the caller's breaker does the retrying.
The client is created on first use, because a Cluster client contacts the cluster when created
and an unreachable backend must degrade the server, not stop it from starting.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.commands.policies import (
    BasePolicyResolver,
    CommandPolicies,
    PolicyResolver,
    RequestPolicy,
    ResponsePolicy,
    StaticPolicyResolver,
)
from redis.connection import AbstractConnection, Connection, parse_url
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

from ..address import shared_address
from ..config import Settings
from ..errors import BackendError, ConfigError, PersistedError
from .base import (
    KEY_RINGS,
    META_FIELD,
    Backend,
    FlushRequest,
    Meta,
    Reasserted,
    SessionBudget,
    Takeover,
    TakeoverReason,
    pack_stamp,
    tag_digest,
    ttl_milliseconds,
    validate_address,
    validate_claim,
    validate_request,
    validate_shared_address,
)

SCRIPTS = {
    name: importlib.resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    for name in ("takeover", "claim", "reassert", "flush", "delete", "forget", "key_rings", "solara_takeover")
}
SENTINEL_PORT = 26379
# Sessions per flush script call: one call's fixed costs (a command to pack, parse and dispatch)
# spread over many sessions, while Redis still serves other clients between calls.
SESSIONS_PER_CALL = 100
_FAILURES = (RedisError, RedisClusterException, OSError)

Client = Redis | RedisCluster


class _KeyedScripts(BasePolicyResolver):
    """Routes EVAL/EVALSHA by their declared keys (one slot), deferring every other command."""

    def __init__(self, fallback: PolicyResolver | None = None) -> None:
        keyed = CommandPolicies(RequestPolicy.DEFAULT_KEYED, ResponsePolicy.DEFAULT_KEYED)
        super().__init__({"core": {"evalsha": keyed, "eval": keyed}}, fallback or StaticPolicyResolver())

    def with_fallback(self, fallback: PolicyResolver) -> PolicyResolver:
        return _KeyedScripts(fallback)


_SCRIPTS_ARE_KEYED = _KeyedScripts()


def route_scripts_by_key(pipe: Any) -> bool:
    """Let a cluster pipeline route EVALSHA by its declared key; False where it cannot.

    redis-py's cluster pipeline does not inherit the client's policy resolver and, not knowing
    EVALSHA is keyed, asks the server (COMMAND GETKEYS) once per command. The resolver is a
    private attribute; a redis-py release without it keeps those extra round trips, which cost
    time, never correctness (the server still names the key), so nothing is logged then.
    """
    if not hasattr(pipe, "_policy_resolver"):
        return False
    pipe._policy_resolver = _SCRIPTS_ARE_KEYED
    return True


class RedisBackend(Backend):
    """State in a shared Redis (standalone, Sentinel or Cluster)."""

    shared = True

    def __init__(self, settings: Settings) -> None:
        self._where = redact(settings.url)
        self._timeout = settings.connect_timeout
        self._prefix = settings.prefix
        self._connect = client_factory(settings.url, settings.connect_timeout)
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._closers: list[Callable[[], None]] = []
        self._scripts: dict[str, Script] = {}

    def takeover(
        self,
        address: str,
        schema_tag: str,
        ttl: float,
        budget: SessionBudget,
        *,
        shared: bool = False,
        claim: int = 0,
        opened: int = 0,
    ) -> Takeover:
        keys = self._keys(validate_address(address))
        args = [
            tag_digest(schema_tag),
            ttl_milliseconds(ttl),
            budget.max_keys,
            budget.max_bytes,
            b"1" if shared else b"0",
            validate_claim(claim),
            validate_claim(opened),
        ]
        with self._failing("takeover"):
            self._client_or_connect()
            return _takeover(self._scripts["takeover"](keys=keys, args=args))

    def claim(
        self, address: str, schema_tag: str, ttl: float, generation: int, key_ids: Sequence[bytes], opened: int
    ) -> int:
        key = self._prefix + validate_address(address)
        args = [
            tag_digest(schema_tag),
            ttl_milliseconds(ttl),
            validate_claim(generation),
            b"".join(key_ids),
            validate_claim(opened),
        ]
        with self._failing("claim"):
            self._client_or_connect()
            return int(self._scripts["claim"](keys=[key], args=args))

    def flush(self, request: FlushRequest) -> bool:
        validate_request(request)
        with self._failing("flush"):
            self._client_or_connect()
            keys, args = _flush_call([request], self._prefix)
            (reply,) = self._scripts["flush"](keys=keys, args=args)
        if isinstance(reply, Exception):
            raise self._error("flush", reply) from reply
        return reply == 1

    def forget(self, shared_address: str, stamp: int, ttl: float) -> int:
        key = self._prefix + validate_shared_address(shared_address)
        with self._failing("forget"):
            self._client_or_connect()
            return int(self._scripts["forget"](keys=[key], args=[pack_stamp(stamp), ttl_milliseconds(ttl)]))

    def flush_many(self, requests: Sequence[FlushRequest]) -> list[bool | BackendError]:
        """All requests in one pipelined round trip (per Cluster node), not one transaction.

        Standalone, up to ``SESSIONS_PER_CALL`` sessions share one script call; a Cluster gets
        one call per session (each session is its own slot).
        """
        for request in requests:
            validate_request(request)
        results: list[bool | BackendError] = []
        if not requests:
            return results
        with self._failing("flush_many"):
            client = self._client_or_connect()
            script = self._scripts["flush"]
            pipe = client.pipeline(transaction=False)
            per_call = SESSIONS_PER_CALL
            if isinstance(client, RedisCluster):
                route_scripts_by_key(pipe)
                per_call = 1
            calls = [
                _flush_call(requests[start : start + per_call], self._prefix)
                for start in range(0, len(requests), per_call)
            ]
            for keys, args in calls:
                # EVALSHA through execute_command: redis-py's Script objects add a SCRIPT EXISTS
                # round trip to a pipeline and its cluster pipeline refuses evalsha().
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            for (keys, args), reply in zip(calls, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, NoScriptError):  # the server lost its script cache (restart, failover)
                    try:
                        reply = script(keys=keys, args=args)
                    except _FAILURES as error:
                        reply = error
                if isinstance(reply, Exception):
                    results += [self._error("flush_many", reply)] * args[0]
                else:
                    results += [
                        self._error("flush_many", one) if isinstance(one, Exception) else one == 1 for one in reply
                    ]
        return results

    def _keys(self, address: str) -> list[str]:
        """A kernel's hash and its browser session's shared hash (one hash tag, one slot)."""
        return [self._prefix + address, self._prefix + shared_address(address)]

    def peek_generation(self, address: str) -> int | None:
        key = self._prefix + validate_address(address)
        with self._failing("peek_generation"):
            stored = self._client_or_connect().hget(key, META_FIELD)
        return None if stored is None else Meta.unpack(stored).generation

    def reassert(
        self, address: str, schema_tag: str, ttl: float, *, generation: int, manifest: bytes, opened: int
    ) -> Reasserted:
        key = self._prefix + validate_address(address)
        args = [manifest, validate_claim(generation), validate_claim(opened), ttl_milliseconds(ttl), tag_digest(schema_tag)]
        with self._failing("reassert"):
            self._client_or_connect()
            outcome, stored = self._scripts["reassert"](keys=[key], args=args)
        return Reasserted(outcome.decode(), int(stored))

    def delete(self, address: str, generation: int | None = None) -> bool:
        key = self._prefix + validate_address(address)
        with self._failing("delete"):
            client = self._client_or_connect()
            if generation is None:
                return client.delete(key) == 1
            return self._scripts["delete"](keys=[key], args=[generation]) == 1

    def publish_key_ring(self, instance_id: str, fingerprint: str, max_age: float) -> dict[str, str]:
        key = self._prefix + KEY_RINGS
        with self._failing("publish_key_ring"):
            self._client_or_connect()
            args = [instance_id, fingerprint, int(time.time()), max_age, ttl_milliseconds(max_age * 2)]
            reply = self._scripts["key_rings"](keys=[key], args=args)
        return {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}

    def ping(self) -> None:
        with self._failing("ping"):
            self._client_or_connect().ping()

    def eviction_policy(self) -> str | None:
        """``maxmemory-policy``; None when CONFIG is refused (common on managed Redis)."""
        with self._failing("eviction_policy"):
            client = self._client_or_connect()
            try:
                reply = client.config_get("maxmemory-policy")
            except ResponseError:
                return None
        return reply.get("maxmemory-policy")  # redis-py decodes CONFIG GET replies itself

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            closers, self._closers = self._closers, []
        if client is not None:
            client.close()
        for close in closers:
            close()

    def _client_or_connect(self) -> Client:
        with self._lock:
            if self._client is None:
                client, self._closers = self._connect()
                self._scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
                for text in SCRIPTS.values():
                    # Loaded now, at start-up, so the first takeover after a Redis restart is one
                    # round trip, not a NOSCRIPT miss plus a load plus a retry.
                    client.script_load(text)
                self._client = client
            return self._client

    @contextlib.contextmanager
    def _failing(self, operation: str) -> Iterator[None]:
        try:
            yield
        except _FAILURES as error:
            raise self._error(operation, error) from error
        except PersistedError:
            raise  # ours already (a reply this library refuses): it names its own problem
        except Exception as error:
            # redis-py can fail outside its own tree: an AttributeError when another thread closes
            # the connection under a call (close() at shutdown). A backend failure like any other,
            # so the writer thread retries it instead of dying with every session's writes.
            raise self._error(operation, error) from error

    def _error(self, operation: str, error: Exception) -> BackendError:
        problem = f"{type(error).__name__}: {str(error).rstrip('.')}"
        return BackendError(
            problem=f"redis {operation} at {self._where} failed: {problem}", fix=self._fix(error)
        )

    def _fix(self, error: Exception) -> str:
        if isinstance(error, AuthenticationError | NoPermissionError):
            return (
                "check the user and password in SOLARA_STATE_URL; the user needs +@scripting, +@hash, "
                "DEL, EXISTS, PEXPIRE, PTTL, PING and CONFIG GET (optional); solara-persisted doctor names what it lacks"
            )
        if isinstance(error, OutOfMemoryError):
            return (
                "Redis reached maxmemory: raise maxmemory or lower SOLARA_STATE_TTL so sessions expire sooner"
            )
        if isinstance(error, ReadOnlyError):
            return "SOLARA_STATE_URL points at a replica; point it at the primary or use redis+sentinel://"
        if isinstance(error, ResponseError):
            return (
                f"keys under SOLARA_STATE_PREFIX={self._prefix!r} must hold only solara-persisted hashes "
                "and the server must be Redis 6.2 or later; check the server log"
            )
        return (
            "check that Redis is running and reachable from this host within SOLARA_STATE_CONNECT_TIMEOUT "
            f"({self._timeout * 1000:g}ms); raise that timeout if the network is slow"
        )

    def take_solara_hash(
        self, key: str, session_hmacs: Sequence[bytes], ttl: float, budget: SessionBudget
    ) -> dict[bytes, bytes] | None:
        with self._failing("take_solara_hash"):
            self._client_or_connect()
            args = [ttl_milliseconds(ttl), budget.max_keys, budget.max_bytes, *session_hmacs]
            reply = self._scripts["solara_takeover"](keys=[key], args=args)
        if not reply:
            return None
        return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


def _takeover(reply: list[Any]) -> Takeover:
    """The takeover script's reply as a ``Takeover`` (field names stay raw bytes until verified)."""
    kernel, shared, pttl = reply
    extra: dict[str, Any] = {"ttl_left": int(pttl) / 1000 if int(pttl) >= 0 else None}
    if shared and shared[0] == b"over-budget":
        extra.update(shared_over=shared[1].decode(), shared_amount=int(shared[2]))
    elif shared:
        extra.update(shared={shared[i]: shared[i + 1] for i in range(1, len(shared), 2)})
    reason: TakeoverReason = kernel[0].decode()
    generation = int(kernel[1])
    if reason in ("miss", "corrupt", "stale"):
        return Takeover(reason, generation, **extra)
    meta = Meta.unpack(kernel[2])
    if reason == "over-budget":
        return Takeover(reason, generation, meta, over=kernel[3].decode(), amount=int(kernel[4]), **extra)
    fields = {kernel[i]: kernel[i + 1] for i in range(3, len(kernel), 2)}
    return Takeover(reason, generation, meta, fields, **extra)


def _flush_call(requests: Sequence[FlushRequest], prefix: str) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one flush script call writing ``requests`` (layout: lua/flush.lua)."""
    keys: list[str] = []
    args: list[Any] = [len(requests)]
    for request in requests:
        key = prefix + request.address
        ttl, must_exist, n = ttl_milliseconds(request.ttl), int(request.must_exist), len(request.fields)
        # The shared hash only when the write has shared work: most writes have none, and every
        # argument costs encoding on the hot path.
        if request.shared or request.shared_removed:
            keys += (key, prefix + shared_address(request.address))
            body = [*_pairs(request.fields), *_pairs(request.shared), *request.removed, *request.shared_removed]
            m, r, stamp = len(request.shared), len(request.removed), request.shared_stamp
            args += (b"2 %d %d %d %d %d %d %d" % (len(body) + 1, ttl, must_exist, n, m, r, stamp), request.meta.pack())
        else:
            keys.append(key)
            body = [*_pairs(request.fields), *request.removed]
            args += (b"1 %d %d %d %d" % (len(body) + 1, ttl, must_exist, n), request.meta.pack())
        args += body
    return keys, args


def _pairs(fields: Mapping[str, bytes]) -> Iterator[str | bytes]:
    for name, data in fields.items():
        yield name
        yield data


class _OneWrite(AbstractConnection):
    """A pipeline leaves in one socket write, not in redis-py's 6 KB pieces.

    Every write releases the GIL, and while a kernel thread computes, the writer gets it back
    only after the switch interval (5 ms): a 200-session batch in nine pieces waited that out
    nine times.
    """

    def pack_commands(self, commands: Any) -> list[bytes]:
        return [b"".join(super().pack_commands(commands))]


@functools.cache
def _one_write(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` whose pipelines are written in one piece: TCP, TLS, a Unix socket and
    Sentinel. A Cluster client keeps redis-py's own (it gives its nodes no connection class)."""
    return type(f"OneWrite{connection_class.__name__}", (_OneWrite, connection_class), {})


def client_factory(url: str, timeout: float) -> Callable[[], tuple[Client, list[Callable[[], None]]]]:
    """Parse ``url`` now (a malformed one refuses start-up) and return what connects later.

    The factory returns the client and anything else to close with it (Sentinel's own clients).
    """
    bounded: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not rest:
        raise _url_error(url, "it names no scheme, host or socket path")
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return _sentinel_factory(url, scheme == "rediss+sentinel", rest, bounded)
    cluster = scheme in ("redis+cluster", "rediss+cluster")
    plain = f"{scheme.removesuffix('+cluster')}://{rest}"
    try:
        options = parse_url(plain)
    except ValueError as error:
        raise _url_error(url, str(error)) from None
    if cluster:
        if options.get("db", 0) != 0:
            raise _url_error(url, "a Redis Cluster has only database 0")
        return lambda: (RedisCluster.from_url(plain, **bounded), [])
    connection_class = _one_write(options.get("connection_class", Connection))
    return lambda: (Redis.from_url(plain, connection_class=connection_class, **bounded), [])


def _sentinel_factory(
    url: str, tls: bool, rest: str, bounded: dict[str, Any]
) -> Callable[[], tuple[Client, list[Callable[[], None]]]]:
    netloc, _, path = rest.partition("/")
    userinfo, _, hostlist = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = []
    for node in hostlist.split(","):
        host, colon, port = node.rpartition(":")
        if not colon or "]" in port:  # no port given (a bare IPv6 literal ends in "]")
            host, port = node, str(SENTINEL_PORT)
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise _url_error(url, f"sentinel {node!r} is not host[:port]")
        nodes.append((host, int(port)))
    service, _, db = path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise _url_error(url, "it needs /service_name[/db] after the sentinel list")
    credentials = {"username": unquote(user) or None, "password": unquote(password) or None}
    master = dict(bounded, db=int(db or 0), **credentials)
    master["connection_class"] = _one_write(SentinelManagedSSLConnection if tls else SentinelManagedConnection)

    def connect() -> tuple[Client, list[Callable[[], None]]]:
        sentinel = Sentinel(nodes, sentinel_kwargs=dict(bounded))
        client = sentinel.master_for(service, **master)
        # master_for's client does not own its pool, so close() alone would leave it connected.
        return client, [client.connection_pool.disconnect, *(node.close for node in sentinel.sentinels)]

    return connect


def _url_error(url: str, problem: str) -> ConfigError:
    return ConfigError(
        "SOLARA_STATE_URL",
        f"{redact(url)!r}: {problem}",
        "use redis://host:6379/0, rediss://..., unix:///path/redis.sock, "
        "redis+sentinel://host:26379,host:26379/service_name/0 or redis+cluster://host:6379",
    )


def redact(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{hosts}{slash}{path}"
