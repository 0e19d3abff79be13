"""``solara-persisted doctor``: will persistence work on this instance, and if not, why.

A misconfiguration loses sessions silently: an evicting Redis, an ACL that refuses one command
of one script, a replica with other secret keys all look healthy until a failover restores
nothing. Each check reads what the server reads (``Settings.from_env``, the same URL parsed the
same way) and answers with a ``Check``: pass, warn or fail, what it found, and a one-line fix.
Every Redis call is bounded by the timeout (``SOLARA_STATE_CONNECT_TIMEOUT`` unless given); the
only key written is the ACL probe's scratch key, deleted before that check returns; no row ever
holds a password or a secret key.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import unquote

import attrs
from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeout
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..backends.base import KEY_RINGS, META_FIELD, STAMP_SIZE, TAG_DIGEST_SIZE, tag_digest
from ..backends.redis import client_factory, redact
from ..config import Settings, unknown_settings
from ..engine import SAFE_EVICTION_POLICIES
from ..envelope import KeyRing
from ..errors import ConfigError
from ..key_ring_check import KEY_RING_INTERVAL, KEY_RING_MAX_AGE
from .report import human_duration, human_size
from .stored import HEAD_SIZE, envelope_version, key_kind, stored_meta

Status = Literal["pass", "warn", "fail"]
SEVERITY: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}
STYLES: dict[Status, str] = {"pass": "green", "warn": "yellow", "fail": "red"}

#: ``--memory-warn``; at ``MEMORY_FAIL_PERCENT`` a Redis under noeviction is about to refuse writes.
MEMORY_WARN_PERCENT = 80.0
MEMORY_FAIL_PERCENT = 95.0
#: ``--sample``: how many keys under the prefix are read at most.
SAMPLE = 200
SCAN_COUNT = 100
#: A prefix with few keys in a big database must not make the doctor walk all of it (~100,000 keys).
MAX_SCAN_CALLS = 1000
#: The engine's scripts and commands need this Redis (docs/operations.md, Redis URLs).
MIN_REDIS = (6, 2)
#: The ACL probe's scratch key is ``<prefix>doctor:<random>``: ':' is never in a session address.
SCRATCH = "doctor:"
_FAILURES = (RedisError, RedisClusterException, OSError)
_RETRY = (
    "rerun; if it fails again, check the network and the timeout (--timeout, SOLARA_STATE_CONNECT_TIMEOUT)"
)

# Every command the engine's Lua scripts run (backends/lua/*.lua), in a harmless form on the
# scratch key, because ACLs apply inside scripts too: the key is created, expires in a minute at
# the latest and is deleted. Reply: the ACL names of the refused commands ('~': a key the user's
# key patterns do not cover; such refusals say "access", a command's say "run"). Redis 7.0 words
# them "The user executing the script can't ...", later releases "... has no permissions to ...".
# Only a refusal counts: at maxmemory HSET fails with OOM, which says nothing about permissions.
ACL_PROBE = r"""
local key, refused = KEYS[1], {}
local function try(name, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    local err = string.lower(reply.err)
    if string.find(err, 'no permissions', 1, true) or string.find(err, "script can't", 1, true) then
      refused[#refused + 1] = string.find(err, 'access', 1, true) and '~' or name
    end
  end
end
try('hset', 'HSET', key, '\0', 'doctor')
try('pexpire', 'PEXPIRE', key, 60000)
try('hget', 'HGET', key, '\0')
try('hlen', 'HLEN', key)
try('hstrlen', 'HSTRLEN', key, '\0')
try('hkeys', 'HKEYS', key)
try('hgetall', 'HGETALL', key)
try('hincrby', 'HINCRBY', key, 'n', 1)
try('hdel', 'HDEL', key, 'n')
try('exists', 'EXISTS', key)
try('pttl', 'PTTL', key)
try('memory|usage', 'MEMORY', 'USAGE', key, 'SAMPLES', '0')
try('del', 'DEL', key)
return refused
"""

# Read-only: a stored hash's meta field, its PTTL, and the first bytes of each value with its
# field name, so that sampling a session costs its headers, never its values, on the wire.
HEADERS = r"""
local reply = {redis.call('HGET', KEYS[1], '\0'), redis.call('PTTL', KEYS[1])}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.byte(field, 1) ~= 0 then
    reply[#reply + 1] = field
    reply[#reply + 1] = string.sub(redis.call('HGET', KEYS[1], field), 1, ARGV[1])
  end
end
return reply
"""


@attrs.frozen
class Check:
    """One row of the report: what was checked, the verdict, what was found, the fix (None on a pass)."""

    name: str
    status: Status
    found: str
    fix: str | None = None


def ok(checks: list[Check]) -> bool:
    """Warnings allowed: only a fail means persistence will not work as configured."""
    return all(check.status != "fail" for check in checks)


def to_json(checks: list[Check]) -> str:
    return json.dumps(
        {"ok": ok(checks), "checks": [attrs.asdict(check) for check in checks]}, indent=2, ensure_ascii=False
    )


def print_table(console: Console, checks: list[Check]) -> None:
    """For a person at a terminal: one row per check, the verdict coloured, a count last."""
    table = Table(title="solara-persisted doctor", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for check in checks:
        style = STYLES[check.status]
        table.add_row(
            escape(check.name), f"[{style}]{check.status}[/]", escape(check.found), escape(check.fix or "")
        )
    console.print(table)
    counts = collections.Counter(check.status for check in checks)
    summary = ", ".join(f"{counts[status]} {status}" for status in SEVERITY)
    verdict = (
        "[green]persistence will work[/]" if ok(checks) else "[red]persistence will not work as configured[/]"
    )
    console.print(f"{summary}: {verdict}", highlight=False)


# --------------------------------------------------------------------------- settings


def check_settings(environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """Parse and validate as the server does at start-up; the settings, or None when nothing can follow.

    A refusal is the server's own one-line message. Unknown ``SOLARA_STATE_*`` names are warnings,
    shown with a refusal too: a typo leaves the real setting at its default.
    """
    unknown = unknown_settings(environ)
    also = f" (also: {'; '.join(unknown)})" if unknown else ""
    try:
        settings = Settings.from_env(environ)
        warnings = settings.validate()
        if settings.backend == "redis":
            client_factory(settings.url, settings.connect_timeout)  # parses the URL as the server does
    except ConfigError as error:
        return Check("settings", "fail", f"{error.setting}: {error.problem}{also}", error.fix), None
    if not settings.enabled:
        return Check(
            "settings",
            "fail",
            f"persistence is off: SOLARA_STATE_BACKEND is unset{also}",
            "set SOLARA_STATE_BACKEND=redis, SOLARA_STATE_URL and SOLARA_STATE_SECRET_KEYS, the same on every instance",
        ), None
    if warnings or unknown:
        fixes = ["follow each warning's advice"] if warnings else []
        if unknown:
            fixes.append(
                "rename or unset the names solara-persisted does not know (docs/operations.md lists them)"
            )
        return Check("settings", "warn", "; ".join([*warnings, *unknown]), "; ".join(fixes)), settings
    where = f" at {redact(settings.url)}" if settings.backend == "redis" else ""
    keys = len(settings.secret_keys)
    return Check(
        "settings",
        "pass",
        f"backend {settings.backend}{where}, prefix {settings.prefix!r}, TTL {human_duration(settings.ttl)}, "
        f"{keys} secret key{'' if keys == 1 else 's'}",
    ), settings


# --------------------------------------------------------------------------- the rest


@attrs.define
class Connection:
    """The client the server would use, and each primary's own client (a Cluster has several)."""

    client: Redis | RedisCluster
    nodes: list[tuple[str, Redis]]
    closers: list[Callable[[], None]]

    def close(self) -> None:
        self.client.close()
        for close in self.closers:
            close()


@attrs.frozen
class Sample:
    """What a bounded SCAN under the prefix found: headers and TTLs only, never a value."""

    kernels: list[tuple[bytes | None, dict[str, bytes]]]  # meta field, value heads by field
    shared: list[dict[str, bytes]]  # value heads by field
    foreign: int  # keys under the prefix that are no hash of ours
    ttls: list[int]  # PTTL of every sampled key, ms; -1: none
    more: bool  # the prefix holds more keys than were sampled


def run_doctor(
    settings: Settings,
    *,
    timeout: float | None = None,
    memory_warn: float = MEMORY_WARN_PERCENT,
    sample: int = SAMPLE,
) -> list[Check]:
    """Every check after ``check_settings``, in the report's order, for the settings it accepted.

    ``timeout`` bounds each Redis call (default ``SOLARA_STATE_CONNECT_TIMEOUT``). When Redis
    cannot be reached, only the checks that need no server follow.
    """
    if settings.backend != "redis":
        return [
            Check(
                "backend",
                "warn",
                f"{settings.backend}: state lives in this process only, so a failover to another instance "
                "restores nothing (nothing more to check)",
                "set SOLARA_STATE_BACKEND=redis and SOLARA_STATE_URL for a fleet",
            )
        ]
    reachable, connection = check_reachable(settings, timeout or settings.connect_timeout)
    tls = check_tls(settings.url)
    if connection is None:
        return _scrubbed(settings, [reachable, tls, check_ttl(settings, None)])
    client = connection.client
    try:
        checks = [
            reachable,
            _per_node("server", connection, check_server),
            tls,
            _per_node("eviction", connection, check_eviction),
            _per_node("memory", connection, lambda node: check_memory(node, memory_warn)),
            _guarded("acl", lambda: check_acl(client, settings)),
            _guarded("key ring", lambda: check_key_ring(client, settings)),
        ]
        try:
            stored = sample_keys(connection, settings.prefix, sample)
        except _FAILURES as error:
            checks += [_not_sampled(error), check_ttl(settings, None)]
        else:
            checks += [check_sessions(stored, settings), check_ttl(settings, stored)]
    finally:
        connection.close()
    return _scrubbed(settings, checks)


def check_reachable(settings: Settings, timeout: float) -> tuple[Check, Connection | None]:
    """Connect as the server does and time a PING; the connection for every later check, or None."""
    where = redact(settings.url)
    connection = None
    try:
        client, closers = client_factory(settings.url, timeout)()
        connection = Connection(client, [], closers)
        started = time.perf_counter()
        client.ping()  # connects (and authenticates) first
        connected = time.perf_counter() - started
        started = time.perf_counter()
        client.ping()
        round_trip = time.perf_counter() - started
        if isinstance(client, RedisCluster):
            connection.nodes = [
                (node.name, client.get_redis_connection(node)) for node in client.get_primaries()
            ]
        else:
            connection.nodes = [("", client)]
    except _FAILURES as error:
        if connection is not None:
            connection.close()
        return Check("reachable", "fail", f"{where}: {_error(error)}", _unreachable_fix(error, timeout)), None
    found = f"PING {round_trip * 1000:.1f} ms ({connected * 1000:.1f} ms with connecting) at {where}"
    if round_trip > timeout / 2:
        return Check(
            "reachable",
            "warn",
            f"{found}: over half the {timeout * 1000:g} ms each call may take",
            "move Redis closer to the instances or raise SOLARA_STATE_CONNECT_TIMEOUT",
        ), connection
    return Check("reachable", "pass", found), connection


def _unreachable_fix(error: Exception, timeout: float) -> str:
    if isinstance(error, AuthenticationError):
        return "check the user and password in SOLARA_STATE_URL"
    if isinstance(error, NoPermissionError):
        return "the user may not PING: ACL SETUSER <user> +ping (see the acl check's list)"
    if isinstance(error, RedisTimeout):
        return (
            f"no answer within {timeout * 1000:g} ms: check SOLARA_STATE_URL, the network (firewall, security "
            "group) and TLS (rediss:// for a TLS port); raise SOLARA_STATE_CONNECT_TIMEOUT if Redis is far"
        )
    return (
        "check SOLARA_STATE_URL (host, port, database), that Redis runs and this host can reach it "
        "(firewall, security group), and TLS (rediss:// for a TLS port)"
    )


def check_server(node: Redis) -> Check:
    """Which server answers, from INFO: a fork reports a Redis version too, so its own field wins."""
    try:
        info = node.info()
    except ResponseError as error:
        return Check(
            "server",
            "warn",
            f"INFO refused ({_error(error)}): the server is not identified",
            "run the doctor as a user allowed INFO to identify the server (the engine itself does not need it)",
        )
    redis_version = str(info.get("redis_version", ""))
    if "dragonfly_version" in info:
        return Check("server", "pass", f"Dragonfly {info['dragonfly_version']}")
    if "valkey_version" in info or str(info.get("server_name", "")).lower() == "valkey":
        return Check("server", "pass", f"Valkey {info.get('valkey_version', redis_version)}")
    if "mvcc_depth" in info or "keydb" in str(info.get("executable", "")).lower():
        return Check("server", "pass", f"KeyDB {redis_version}")
    if not redis_version:
        return Check(
            "server",
            "warn",
            "INFO names no server version: an unknown server",
            "solara-persisted is tested with Redis 6.2 and later; check this server runs Lua scripts as Redis does",
        )
    found = f"Redis {redis_version}"
    try:
        release = tuple(int(part) for part in redis_version.split(".")[:2])
    except ValueError:
        return Check(
            "server", "warn", f"{found}: not a version number", "check the server is Redis 6.2 or later"
        )
    if release < MIN_REDIS:
        return Check(
            "server", "fail", f"{found}: the engine needs Redis 6.2 or later", "upgrade Redis to 6.2 or later"
        )
    return Check("server", "pass", found)


def check_tls(url: str) -> Check:
    """Session state and the password cross the network in clear unless the URL says TLS or stays local."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme.startswith("rediss"):
        note = " (to the master; the sentinels are reached without TLS)" if "sentinel" in scheme else ""
        return Check("tls", "pass", f"TLS on{note}")
    if scheme == "unix":
        return Check("tls", "pass", "unix socket: no network")
    remote = [host for host in _hosts(rest) if not _loopback(host)]
    if not remote:
        return Check("tls", "pass", "loopback only: no TLS needed")
    return Check(
        "tls",
        "warn",
        f"{scheme}:// to {', '.join(remote)}: session state and the password cross the network in clear",
        f"use {scheme.replace('redis', 'rediss', 1)}:// (TLS) for a Redis on another host",
    )


def _hosts(rest: str) -> list[str]:
    """The host names of a URL's ``[user[:password]@]host[:port][,host[:port]...]`` part."""
    netloc = rest.partition("/")[0].rpartition("@")[2]
    hosts = []
    for node in netloc.split(","):
        if node.startswith("["):
            hosts.append(node[1:].partition("]")[0])
        else:
            hosts.append(node.partition(":")[0])
    return hosts


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_eviction(node: Redis) -> Check:
    """``maxmemory-policy`` must be noeviction: every state key has a TTL, so even volatile-* evicts live sessions."""
    source = ""
    try:
        policy = node.config_get("maxmemory-policy").get("maxmemory-policy")
    except ResponseError as refused:  # NOPERM, or CONFIG renamed away (managed Redis)
        try:
            policy = node.info("memory").get("maxmemory_policy")
        except ResponseError:
            policy = None
        if policy is None:
            return Check(
                "eviction",
                "warn",
                f"could not read maxmemory-policy: CONFIG GET and INFO refused ({_error(refused)})",
                "make sure it is noeviction (your provider's parameter group, or redis.conf)",
            )
        source = " (from INFO: CONFIG GET refused)"
    if policy in SAFE_EVICTION_POLICIES:
        return Check("eviction", "pass", f"maxmemory-policy {policy}{source}")
    return Check(
        "eviction",
        "fail",
        f"maxmemory-policy {policy}{source}: Redis evicts live sessions under memory pressure",
        "CONFIG SET maxmemory-policy noeviction, and set it in redis.conf (or your provider's parameter group) "
        "so that it survives a restart",
    )


def check_memory(node: Redis, warn_percent: float) -> Check:
    """Under noeviction a full Redis refuses every write: warn well before, fail when nearly there."""
    try:
        info = node.info("memory")
    except ResponseError as error:
        return Check(
            "memory",
            "warn",
            f"could not read INFO memory ({_error(error)})",
            "watch used memory against maxmemory in your provider's console",
        )
    used, limit = info.get("used_memory"), info.get("maxmemory")
    if not isinstance(used, int) or not isinstance(limit, int):
        return Check(
            "memory",
            "warn",
            "INFO memory reports no used_memory or maxmemory",
            "watch used memory against maxmemory in your provider's console",
        )
    if limit == 0:
        return Check(
            "memory",
            "warn",
            f"{human_size(used)} used, no maxmemory: Redis can grow until the host runs out",
            "set maxmemory (CONFIG SET maxmemory <bytes>, and in redis.conf) below the host's memory",
        )
    percent = 100 * used / limit
    found = f"{human_size(used)} used of maxmemory {human_size(limit)} ({percent:.0f} %)"
    fix = "raise maxmemory, or lower SOLARA_STATE_TTL so sessions expire sooner"
    if percent >= MEMORY_FAIL_PERCENT:
        return Check("memory", "fail", f"{found}: at maxmemory, writes of session state are refused", fix)
    if percent >= warn_percent:
        return Check("memory", "warn", f"{found}: above {warn_percent:g} %", fix)
    return Check("memory", "pass", found)


def check_acl(client: Redis | RedisCluster, settings: Settings) -> Check:
    """Try every command the engine runs, on a scratch key under the prefix: a refusal is found, not guessed.

    The scripts' own commands are tried by a script (ACLs apply inside scripts too), run with
    EVALSHA as the engine runs them, or with EVAL when EVALSHA is refused. CONFIG GET refused is
    only a warning (the engine then does not log the eviction policy); MEMORY USAGE refused inside
    a script only makes a takeover add up value sizes instead.
    """
    key = f"{settings.prefix}{SCRATCH}{secrets.token_hex(8)}"
    refused: list[str] = []

    def attempt(name: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except NoPermissionError as error:
            refused.append(_refusal(name, error))
            return None

    attempt("hget", lambda: client.hget(key, META_FIELD))
    attempt("pexpire", lambda: client.pexpire(key, 60_000))  # nothing there yet: a no-op
    attempt("script|load", lambda: client.script_load(ACL_PROBE))
    sha = hashlib.sha1(ACL_PROBE.encode("utf-8")).hexdigest()
    inner: Any = None
    try:
        inner = client.evalsha(sha, 1, key)
    except NoPermissionError as error:
        refused.append(_refusal("evalsha", error))
    except NoScriptError:
        pass  # EVALSHA is allowed; the probe is not loaded because SCRIPT LOAD was refused
    if inner is None:
        inner = attempt("eval", lambda: client.eval(ACL_PROBE, 1, key))
    attempt("del", lambda: client.delete(key))
    notes = []
    if inner is None:
        notes.append("the commands inside the scripts could not be tried (the probe script could not run)")
    else:
        for name in (item.decode() for item in inner):
            if name == "memory|usage":
                notes.append("MEMORY USAGE refused inside scripts: a takeover adds up value sizes instead")
            else:
                refused.append(name)
    config_refused = False
    try:
        client.config_get("maxmemory-policy")
    except ResponseError:  # NOPERM, or CONFIG renamed away (managed Redis)
        config_refused = True
    user = _user(settings.url)
    commands = sorted(set(refused) - {"~", "eval"})
    if commands or "~" in refused:
        problems = [f"refused: {', '.join(commands)}"] if commands else []
        grants = [f"+{command}" for command in commands]
        if "~" in refused:
            problems.append(f"keys under {settings.prefix!r} are not covered by the user's key patterns")
            grants.append(f"~{settings.prefix}*")
        return Check(
            "acl",
            "fail",
            f"user {user}: {'; '.join(problems + notes)}",
            f"ACL SETUSER {user} {' '.join(grants)}",
        )
    allowed = f"user {user}: every command the engine runs is allowed"
    if config_refused:
        return Check(
            "acl",
            "warn",
            "; ".join([f"{allowed} but CONFIG GET (the eviction policy is not logged at start-up)", *notes]),
            f"optional: ACL SETUSER {user} +config|get",
        )
    return Check("acl", "pass", "; ".join([allowed, *notes]))


def _refusal(name: str, error: NoPermissionError) -> str:
    """``name``, or ``~`` when the key was refused, not the command (Redis says "access" for a key)."""
    return "~" if "access" in str(error) else name


def _user(url: str) -> str:
    """The ACL user the URL logs in as (``default`` when it names none)."""
    return _userinfo(url)[0] or "default"


def _userinfo(url: str) -> tuple[str, str]:
    """The user and password a URL's ``user:password@`` part holds ('' for each absent)."""
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    return unquote(user), unquote(password)


def check_key_ring(client: Redis | RedisCluster, settings: Settings) -> Check:
    """Compare our key ring's fingerprint with what live instances published; publish nothing."""
    ours = KeyRing.from_secrets(settings.secret_keys).fingerprint()
    try:
        entries = client.hgetall(settings.prefix + KEY_RINGS)
    except NoPermissionError as error:
        return Check(
            "key ring",
            "warn",
            f"could not read {settings.prefix + KEY_RINGS} ({_error(error)}); this instance's is {ours}",
            "run the doctor with the server's user, which reads it every 30 s",
        )
    oldest = time.time() - KEY_RING_MAX_AGE
    live = {}
    for instance, value in entries.items():
        fingerprint, _, seen = value.decode("utf-8", "replace").partition(" ")
        with contextlib.suppress(ValueError):
            if float(seen) >= oldest:
                live[instance] = fingerprint
    if not live:
        return Check(
            "key ring",
            "warn",
            f"no instance published its key ring in the last {KEY_RING_MAX_AGE:g} s; this instance's is {ours}",
            f"start the servers (each publishes every {KEY_RING_INTERVAL:g} s) and rerun; the doctor publishes nothing",
        )
    others = sorted(fingerprint for fingerprint in live.values() if fingerprint != ours)
    if others:
        return Check(
            "key ring",
            "fail",
            f"{len(others)} of {len(live)} instances publish a different key ring ({', '.join(sorted(set(others)))}; "
            f"this instance's is {ours})",
            "give every replica the same SOLARA_STATE_SECRET_KEYS in the same order; mid-rotation, finish the roll "
            "(docs/operations.md, Secret keys and rotation)",
        )
    return Check("key ring", "pass", f"every live instance ({len(live)}) publishes this key ring ({ours})")


def sample_keys(connection: Connection, prefix: str, limit: int) -> Sample:
    """At most ``limit`` keys under ``prefix`` (SCAN on each primary): meta, TTL and each value's first bytes.

    The fleet's key-ring hash and the doctor's scratch keys are not sessions and are skipped.
    """
    kernels: list[tuple[bytes | None, dict[str, bytes]]] = []
    shared: list[dict[str, bytes]] = []
    ttls: list[int] = []
    foreign, more = 0, False
    start = len(prefix.encode())
    skip = (f"{prefix}{KEY_RINGS}".encode(), f"{prefix}{SCRATCH}".encode())
    for _, node in connection.nodes:
        keys, truncated = _scan(node, prefix, limit - len(kernels) - len(shared) - foreign, skip)
        more |= truncated
        if not keys:
            continue
        sha = node.script_load(HEADERS)
        pipe = node.pipeline(transaction=False)
        kinds = [key_kind(key[start:]) for key in keys]
        for key, kind in zip(keys, kinds, strict=True):
            if kind == "foreign":
                pipe.pttl(key)
            else:
                pipe.execute_command("EVALSHA", sha, 1, key, HEAD_SIZE)
        for kind, reply in zip(kinds, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, NoPermissionError):
                raise reply
            if isinstance(reply, ResponseError):  # WRONGTYPE: a key shaped like ours that is no hash
                foreign += 1
                continue
            if kind == "foreign":
                if reply != -2:  # expired since the SCAN
                    foreign += 1
                    ttls.append(reply)
                continue
            meta, pttl, *pairs = reply
            if pttl == -2:
                continue
            ttls.append(pttl)
            heads = {pairs[i].decode("utf-8", "replace"): pairs[i + 1] for i in range(0, len(pairs), 2)}
            if kind == "kernel":
                kernels.append((meta, heads))
            else:
                shared.append(heads)
    return Sample(kernels, shared, foreign, ttls, more)


def _scan(node: Redis, prefix: str, limit: int, skip: tuple[bytes, ...]) -> tuple[list[bytes], bool]:
    """Up to ``limit`` keys under ``prefix`` on one node, in at most ``MAX_SCAN_CALLS`` calls; and
    whether there may be more."""
    keys: dict[bytes, None] = {}  # SCAN may return a key twice
    cursor, calls = 0, 0
    while limit > 0:
        cursor, batch = node.scan(cursor, match=f"{prefix}*", count=SCAN_COUNT)
        calls += 1
        keys.update((key, None) for key in batch if not key.startswith(skip))
        if cursor == 0:
            return list(keys)[:limit], len(keys) > limit
        if len(keys) >= limit or calls >= MAX_SCAN_CALLS:
            return list(keys)[:limit], True
    return [], True


def _not_sampled(error: Exception) -> Check:
    if isinstance(error, NoPermissionError):
        return Check(
            "stored sessions",
            "warn",
            f"could not sample the stored keys ({_error(error)})",
            "run the doctor as a user allowed SCAN, SCRIPT LOAD and EVALSHA under the prefix (the engine needs no SCAN)",
        )
    return Check("stored sessions", "fail", f"sampling the stored keys failed: {_error(error)}", _RETRY)


def check_sessions(stored: Sample, settings: Settings) -> Check:
    """What the sampled sessions say: claims, schema tags, signing keys, the versions of each key."""
    ring = KeyRing.from_secrets(settings.secret_keys)
    tag = tag_digest(settings.schema_tag or "default")
    counts: collections.Counter[str] = collections.Counter()
    versions: collections.Counter[tuple[str, int]] = collections.Counter()
    for meta_field, heads in stored.kernels:
        meta = stored_meta(meta_field)
        if meta is None:
            counts["foreign"] += 1
            continue
        if meta.is_claim:
            counts["claims"] += 1
        elif meta.tag != tag:
            counts["other tag"] += 1
        elif not ring.owns(meta.key_id):
            counts["lacking"] += 1
        else:
            counts["ours"] += 1
        versions.update(
            (field, version)
            for field, head in heads.items()
            if (version := envelope_version(head)) is not None
        )
    for heads in stored.shared:
        at = STAMP_SIZE + TAG_DIGEST_SIZE
        versions.update(
            (field, version)
            for field, head in heads.items()
            if (version := envelope_version(head[at:])) is not None
        )
    counts["foreign"] += stored.foreign
    total = len(stored.kernels) + len(stored.shared) + stored.foreign
    if not total:
        return Check("stored sessions", "pass", f"no session stored under {settings.prefix!r} yet")
    found = f"{total}{'+' if stored.more else ''} sampled: {counts['ours']} ours, {counts['claims']} claims"
    if stored.shared:
        found += f", {len(stored.shared)} shared"
    issues: list[tuple[Status, str, str]] = []
    if counts["lacking"]:
        written = counts["lacking"] + counts["ours"]
        issues.append(
            (
                "warn" if counts["ours"] else "fail",
                f"{counts['lacking']} of {written} sessions under this schema tag are signed with a key this "
                "instance lacks: their restores bail out here",
                "give this instance the fleet's SOLARA_STATE_SECRET_KEYS; after a rotation keep the old key "
                "until one TTL has passed",
            )
        )
    if counts["other tag"]:
        issues.append(
            (
                "warn",
                f"{counts['other tag']} sessions carry another schema tag; they restore fresh",
                "expected for one TTL after a deliberate SOLARA_STATE_SCHEMA_TAG change; otherwise give this "
                "instance the fleet's tag",
            )
        )
    if counts["foreign"]:
        issues.append(
            (
                "warn",
                f"{counts['foreign']} keys under the prefix are not solara-persisted's",
                "give the state its own SOLARA_STATE_PREFIX or database",
            )
        )
    if versions:
        shown = [f"{field} v{version} ×{count}" for (field, version), count in versions.most_common(10)]
        if len(versions) > len(shown):
            shown.append(f"{len(versions) - len(shown)} more")
        found += f"; versions {', '.join(shown)}"
    if not issues:
        return Check("stored sessions", "pass", found)
    status = max((status for status, _, _ in issues), key=SEVERITY.__getitem__)
    return Check(
        "stored sessions",
        status,
        "; ".join([found, *(problem for _, problem, _ in issues)]),
        "; ".join(fix for _, _, fix in issues),
    )


def check_ttl(settings: Settings, stored: Sample | None) -> Check:
    """The TTL must outlive the orphan cull, and every stored key must expire."""
    ttl, cull = human_duration(settings.ttl), human_duration(settings.orphan_cull_timeout)
    if settings.ttl <= settings.orphan_cull_timeout:
        return Check(
            "ttl",
            "fail",
            f"SOLARA_STATE_TTL {ttl} does not exceed SOLARA_STATE_ORPHAN_CULL_TIMEOUT {cull}: the state of a "
            "disconnected kernel expires before the kernel is culled, so a reconnect after the cull restores nothing",
            "raise SOLARA_STATE_TTL well above SOLARA_STATE_ORPHAN_CULL_TIMEOUT (the defaults are 24h and 5m)",
        )
    found = f"TTL {ttl} > orphan cull {cull}"
    if stored is None:
        return Check("ttl", "pass", f"{found}; stored keys not read")
    forever = sum(1 for pttl in stored.ttls if pttl < 0)
    if forever:
        return Check(
            "ttl",
            "fail",
            f"{found}; {forever} of {len(stored.ttls)} sampled keys have no TTL: they would live forever",
            "every solara-persisted write sets a TTL, so something else wrote them: delete them, and give the "
            "state its own SOLARA_STATE_PREFIX or database",
        )
    if stored.ttls:
        found += f"; every sampled key expires, the last in {human_duration(max(stored.ttls) / 1000)}"
    return Check("ttl", "pass", found)


# --------------------------------------------------------------------------- helpers


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check whose Redis call failed outright (a timeout mid-run) is a fail row, not a traceback."""
    try:
        return check()
    except _FAILURES as error:
        return Check(name, "fail", _error(error), _RETRY)


def _per_node(name: str, connection: Connection, check: Callable[[Redis], Check]) -> Check:
    """One row for a server-wide check: a Cluster's primaries each answer, the worst verdict wins."""
    rows = [(label, _guarded(name, lambda node=node: check(node))) for label, node in connection.nodes]
    if len(rows) == 1:
        return rows[0][1]
    status = max((row.status for _, row in rows), key=SEVERITY.__getitem__)
    fixes = dict.fromkeys(row.fix for _, row in rows if row.fix)
    return Check(
        name, status, "; ".join(f"{label}: {row.found}" for label, row in rows), "; ".join(fixes) or None
    )


def _scrubbed(settings: Settings, checks: list[Check]) -> list[Check]:
    """No row repeats a secret, whatever a server's error message quoted (URLs are redacted already;
    a password under six characters is no secret worth the name, and masking it would mangle every row)."""
    hidden = [secret for secret in (_userinfo(settings.url)[1], *settings.secret_keys) if len(secret) >= 6]

    def scrub(text: str | None) -> str | None:
        for secret in hidden:
            text = text.replace(secret, "***") if text else text
        return text

    return [attrs.evolve(check, found=scrub(check.found), fix=scrub(check.fix)) for check in checks]


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).rstrip('.')}"
