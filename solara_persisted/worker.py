"""Write-behind: one process-wide writer thread for every session's persisted values.

A change only marks a key dirty (no I/O on the interaction path). Each session's first dirty
mark starts its debounce (``debounce.py``); when it expires, the writer collects every session that is due and
sends all their fenced writes in one pipelined round trip, so 10,000 sessions cost one thread
and one round trip per tick, not 10,000 of each. Keys stay dirty until the backend
acknowledges them: a failed write puts them back. A fenced-out write makes the session stale
for good: its copy is older than the store's, so it never writes again (not even on close) and
its owner is told. Each write carries a new signed manifest of the whole hash and keeps the
session within its key and byte budget. Values shared by the browser session's tabs
(``scope="session"``) ride on the same fenced write, stamped with the time of the change that
made them, so the newest change wins however the writes interleave. The same batched path,
bounded by a deadline, is the shutdown drain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from .address import shared_address
from .backends.base import Backend, FlushRequest, Meta, Reasserted, SessionBudget, pack_stamp
from .breaker import BackendGuard
from .debounce import DebounceSchedule
from .envelope import COUNTER_MODULUS, OVERHEAD, KeyRing, envelope_tag, plain_size, seal, shared_binding
from .errors import BackendError, EncodeError, OversizeError, SnapshotBusy
from .events import Events, FlushResult, quote
from .spec import PersistedSpec, Registry

logger = logging.getLogger("solara.state")

#: How many sessions go into one pipelined round trip.
BATCH_SIZE = 1000
#: A batch also takes every session whose window closes within this share of the debounce. At a
#: steady trickle of changes each window would otherwise close alone, and every round trip costs
#: the writer about as much again as the sessions in it (issue 13: 1.0 against 0.43 ms of writer
#: CPU per change at 50 changes/s). Windows only ever close earlier, so the loss bound holds.
COALESCE = 0.25
#: After a failed write, the earliest retry (the breaker decides whether it is attempted); the
#: first write the backend takes again brings every waiting retry forward to at once.
RETRY_DELAY = 1.0
#: A session whose kernel was mid-event at the snapshot is tried again this much later, and not
#: sooner with another session's batch (each try can cost the writer ``SNAPSHOT_WAIT``).
BUSY_RETRY = 0.05

Snapshot = Callable[[Iterable[str]], Mapping[str, Any]]
#: A session's kernel hash and shared hash as one write leaves them (field -> (envelope tag, size)).
_Views = tuple[dict[str, tuple[bytes, int]], dict[str, tuple[bytes, int]]]


def next_stamp() -> int:
    """Now, as a change stamp: microseconds since the epoch. Equal stamps (two changes in one
    microsecond) resolve to the write that lands last, as two tabs changing at once would."""
    return time.time_ns() // 1000


@attrs.define(eq=False)
class Session:
    """One kernel's persisted state as the writer sees it.

    ``snapshot`` returns the current values of the given concrete keys; it is called from the
    writer thread, must take the lock the kernel's events hold (Solara's kernel lock), and must
    iterate the keys while it holds it: the writer adds every key changed since the batch was
    formed at that moment, so a write never holds part of an event (``_Reading``).
    ``stored`` mirrors the hash as acknowledged (field -> (envelope tag, size)): the next
    manifest signs it, and the budgets are checked against it. ``shared`` is the same for the
    browser session's shared hash as last seen (other tabs write it too), and ``stamps`` the time
    of each key's latest change (nanoseconds since the epoch). ``stale``: fenced out, never written again.
    ``claimed`` False: the generation is a placeholder (the start read nothing); the writer claims
    the session before it writes anything, as soon as the backend answers, as the connection opened
    at ``opened`` (ms; a reconnect to the live kernel moves it on). ``manifest`` is the
    stored state's ``Meta.manifest`` as last read or written here; ``reassert``, when a reconnect
    opened then (ms) reached the live kernel and its hold is not re-asserted yet (the writer does
    that before anything else); ``every_key`` lists the kernel's keys, which that may have to write again.
    """

    kernel_id: str
    address: str
    generation: int
    snapshot: Snapshot
    on_rejected: Callable[[Session], None] | None = None
    dirty: set[str] = attrs.field(factory=set)
    stored: dict[str, tuple[bytes, int]] = attrs.field(factory=dict)
    counter: int = 0
    shared: dict[str, tuple[bytes, int]] = attrs.field(factory=dict)
    stamps: dict[str, int] = attrs.field(factory=dict)
    due: float | None = None
    closed: bool = False
    stale: bool = False
    claimed: bool = True
    opened: int = 0
    manifest: bytes = b""
    reassert: int = 0
    every_key: Callable[[], Iterable[str]] | None = None


class _Reading:
    """The keys one write reads, as the session's snapshot iterates them under the kernel's lock.

    The batch named its keys before an event may have run; the snapshot reads values after it.
    Without the keys that event changed beside them, the write would hold half of it (a restore
    mixing two events). So, at the iteration, every key dirty by then joins this write, and the
    change stamps are read then, before any value.
    """

    def __init__(self, cond: threading.Condition, session: Session, keys: set[str]) -> None:
        self._cond = cond
        self._session = session
        self.keys = set(keys)
        self.stamps: dict[str, int] = {}  # read at the iteration; no values are read without one

    def __iter__(self) -> Iterator[str]:
        session = self._session
        with self._cond:
            if session.dirty:
                self.keys |= session.dirty
                session.dirty, session.due = set(), None  # the window they opened is this write
            self.stamps = dict(session.stamps)
        return iter(sorted(self.keys))


@attrs.frozen
class Budget:
    """The envelope byte caps: per-key budgets override the global settings; 0 disables a cap."""

    warn_bytes: int
    max_bytes: int


class Writer:
    """Debounced, batched, fenced write-behind for many sessions."""

    def __init__(
        self,
        *,
        backend: Backend,
        ring: KeyRing,
        registry: Registry,
        events: Events,
        guard: BackendGuard,
        tag: bytes,
        ttl: float,
        debounce: float,
        default_budget: Budget,
        session_budget: SessionBudget,
        claim: Callable[[str, str, int], int],
        reassert: Callable[[str, str, int, bytes, int], Reasserted],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._ring = ring
        self._registry = registry
        self._events = events
        self._guard = guard
        self._tag = tag
        self._ttl = ttl
        self._debounce = debounce
        self._budget = default_budget
        self._session_budget = session_budget
        self._claim = claim
        self._reassert_call = reassert
        self._clock = clock
        self._cond = threading.Condition()
        self._io = threading.Lock()  # one batch at a time: the thread, a close, or the drain
        self._windows = DebounceSchedule()
        self._sessions: set[Session] = set()
        self._retrying: set[Session] = set()  # waiting RETRY_DELAY after a failed or refused call
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- registration and dirty marks (called from kernel threads; no I/O) --------------------

    def add(self, session: Session) -> None:
        with self._cond:
            self._sessions.add(session)
            if not session.claimed:
                self._schedule(session, self._clock())  # claim as soon as the backend answers
            elif session.dirty:
                self._schedule(session, self._clock() + self._debounce)

    def mark_dirty(self, session: Session, key: str) -> None:
        with self._cond:
            if session.closed or session.stale:
                return
            session.dirty.add(key)
            session.stamps[key] = time.time_ns()  # every change pays this: the cheapest clock read
            if session.due is None:
                self._schedule(session, self._clock() + self._debounce)

    def _schedule(self, session: Session, due: float, *, exact: bool = False) -> None:
        if self._windows.schedule(session, due, exact=exact):
            self._cond.notify()

    # -- the writer thread --------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="solara-persisted-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current batch; dirty keys stay for ``drain``."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._wait_for_due()
                if batch is None:
                    return
            if batch:  # empty when the earliest window belonged to a session closed or rescheduled since
                with self._io:
                    try:
                        self._write(batch)
                    except Exception:
                        # A bug must not end every session's writes with this thread: said loudly,
                        # and the batch's keys are tried again.
                        logger.exception(
                            "a write batch of %d sessions failed; retried in %gs", len(batch), RETRY_DELAY
                        )
                        self._requeue(batch, when=self._clock() + RETRY_DELAY)

    def _wait_for_due(self) -> list[tuple[Session, set[str]]] | None:
        while not self._stopping:
            now = self._clock()
            wait = self._windows.wait(now)
            if wait == 0.0:
                return self._take_due(now)
            self._cond.wait(wait)
        return None

    def _take_due(self, now: float) -> list[tuple[Session, set[str]]]:
        batch: list[tuple[Session, set[str]]] = []
        for session in self._windows.take_due(now, now + self._debounce * COALESCE, BATCH_SIZE):
            batch.append((session, session.dirty))
            session.dirty = set()
        return batch

    # -- explicit flushes: close and drain ----------------------------------------------------

    def close(self, session: Session) -> bool:
        """Final flush of one session; returns whether everything it had was acknowledged."""
        with self._cond:
            session.closed = True
            self._sessions.discard(session)
            self._retrying.discard(session)
            keys, session.dirty, session.due = session.dirty, set(), None
        # Even with nothing left to write, wait for a batch in flight: a tab close deletes next,
        # and a write landing after that delete would bring the state back for a whole TTL.
        with self._io:
            return not keys or session.stale or self._write([(session, keys)]) == 0

    def drain(self, timeout: float) -> int:
        """Flush every session's dirty keys in pipelined batches until ``timeout``; return what is left.

        The shutdown path: the thread is stopped first, then one bounded pass in the caller.
        """
        self.stop()
        deadline = self._clock() + timeout
        with self._cond:
            pending = [(s, s.dirty) for s in self._sessions if s.dirty and not s.stale]
            for session, _ in pending:
                session.dirty, session.due = set(), None
        left = 0
        with self._io:
            for start in range(0, len(pending), BATCH_SIZE):
                chunk = pending[start : start + BATCH_SIZE]
                if self._clock() >= deadline:
                    left += sum(len(keys) for _, keys in chunk)
                    self._requeue(chunk, when=None)
                    continue
                left += self._write(chunk)
        return left

    def flush_now(self, session: Session, timeout: float) -> bool:
        """Write ``session``'s changed keys now, not at the debounce; True once all are acknowledged.

        Waits (up to ``timeout``) for a batch in flight first: it may hold this session's keys,
        and if it failed they are back in ``dirty`` by the time it releases.
        """
        if not self._io.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            with self._cond:
                if session.stale or session.closed:
                    return False
                keys, session.dirty, session.due = session.dirty, set(), None
            return not keys or (self._write([(session, keys)]) == 0 and not session.stale)
        finally:
            self._io.release()

    # -- a reconnect to a live kernel -----------------------------------------------------------

    def reassert(self, session: Session, opened: int, timeout: float) -> bool:
        """A reconnect opened at ``opened`` (ms) reached this live kernel: hold its session again as
        that newer connection (``Backend.reassert``), now if a batch in flight ends and the backend
        answers within ``timeout``, else before the session's next write. False when the session
        is stale (a later connection holds it, or another holder wrote since): its page must not be
        served.

        Without this, a takeover that read the state and wrote nothing (its page never reached the
        user, who came back here) would fence out the kernel the user works on (chaos seed 920).
        """
        with self._cond:
            if session.stale:
                return False
            if not session.claimed:
                session.opened = max(session.opened, opened)  # its claim is ordered by this connection
                return True
            session.reassert = max(session.reassert, opened)
        if self._io.acquire(timeout=max(timeout, 0.0)):
            try:
                with self._cond:
                    done = not session.reassert or session.stale  # by the batch that held the lock
                if done:
                    held: bool | None = not session.stale
                else:
                    held = self._reassert(session) if self._guard.allow() else None
            finally:
                self._io.release()
            if held is not None:
                if session.dirty:
                    with self._cond:
                        self._schedule(session, self._clock())  # pending changes (after a claim: every value)
                return held
        with self._cond:
            now = self._clock()
            if session.due is None or session.due > now:
                self._schedule(session, now)  # the writer re-asserts before anything else
        return True

    def _reassert(self, session: Session) -> bool | None:
        """Re-assert ``session``'s hold for its latest reconnect (the caller holds ``_io`` and the
        breaker's leave): False when it is stale now, None when the backend cannot be reached
        (tried again later). A claim (the state was gone, or only an earlier connection's claim was
        there) puts every kernel-scope key back in ``dirty``: the kernel's values are the state."""
        with self._cond:
            opened = session.reassert
            if session.stale:
                return False
            if not opened:
                return True
            generation, manifest = session.generation, session.manifest
        try:
            answer = self._reassert_call(session.kernel_id, session.address, generation, manifest, opened)
        except BackendError:
            with self._cond:
                self._retrying.add(session)
            return None
        rewrite = self._kernel_keys(session) if answer.outcome == "claimed" else set()
        with self._cond:
            if session.reassert == opened:
                session.reassert = 0  # else a newer reconnect came meanwhile: asked again
            if not answer.held:
                self._go_stale(session)
                return False
            session.generation = answer.generation
            if answer.outcome == "claimed":
                session.counter, session.stored = 0, {}
                session.manifest = Meta.claimed(self._tag, 0).manifest
                session.dirty |= rewrite
        if self._retrying:
            self._retry_now()  # Redis answers again
        return True

    @staticmethod
    def _go_stale(session: Session) -> None:
        """Fenced out for good (under ``_cond``): nothing of this copy is written again."""
        session.stale = True
        session.dirty, session.due, session.reassert = set(), None, 0

    def _kernel_keys(self, session: Session) -> set[str]:
        """The kernel's declared kernel-scope keys. Shared ones are left out: other tabs may have
        changed them since, and a rewrite would stamp the kernel's older value as the newest."""
        if session.every_key is None:
            return set()
        return {
            key
            for key in session.every_key()
            if (spec := self._registry.resolve(key)) is not None and spec.scope != "session"
        }

    def pending(self) -> int:
        """How many sessions hold unacknowledged changes (for tests and the demo)."""
        with self._cond:
            return sum(1 for session in self._sessions if session.dirty)

    # -- one batch: snapshot, encode and sign, one round trip, settle -------------------------

    def _write(self, batch: list[tuple[Session, set[str]]]) -> int:
        """Write one batch; return how many keys are still unacknowledged afterwards."""
        if not self._guard.allow():
            # Degraded mode: no backend call at all; keys stay dirty until the breaker lets us.
            self._requeue(batch, when=self._clock() + RETRY_DELAY, retry=True)
            return sum(len(keys) for _, keys in batch)
        requests: list[FlushRequest] = []
        written: list[tuple[Session, set[str], dict[str, int], _Views]] = []
        busy: list[tuple[Session, set[str]]] = []
        unreadable: list[tuple[Session, set[str]]] = []
        unreachable: list[tuple[Session, set[str]]] = []
        asked = False  # a claim or a re-assertion was sent: it told the breaker how it went
        for session, keys in batch:
            if not session.claimed:
                asked = asked or not unreachable
                if unreachable or not self._take_claim(session):
                    unreachable.append((session, keys))  # one failed call: the rest wait too
                    continue
            if session.stale:
                continue  # fenced out while queued: its values are older than the store's
            if session.reassert:
                asked = asked or not unreachable
                held = None if unreachable else self._reassert(session)
                if held is None:
                    unreachable.append((session, keys))
                    continue
                if not held:
                    if session.on_rejected is not None:
                        session.on_rejected(session)
                    continue
                with self._cond:
                    keys, session.dirty = keys | session.dirty, set()
            reading = _Reading(self._cond, session, keys)
            try:
                request, sizes, views = self._request(session, reading)
            except SnapshotBusy:
                busy.append((session, reading.keys))  # mid-event: half of one event is never written
                continue
            except Exception:
                # A snapshot runs the app's code (a reactive's default, set up again after a
                # clear()): its failure is that kernel's alone, retried later, never the writer's end.
                logger.exception(
                    "persisted values of kernel=%s could not be read; retried in %gs",
                    quote(session.kernel_id),
                    RETRY_DELAY,
                )
                unreadable.append((session, reading.keys))
                continue
            if request is not None:
                requests.append(request)
                written.append((session, reading.keys, sizes, views))
        waiting = sum(len(keys) for _, keys in busy + unreadable + unreachable)
        if busy:
            self._requeue(busy, when=self._clock() + BUSY_RETRY)
        if unreadable:
            self._requeue(unreadable, when=self._clock() + RETRY_DELAY)
        if unreachable:
            self._requeue(unreachable, when=self._clock() + RETRY_DELAY, retry=True)
        if not requests:
            if not asked:
                self._guard.unused()  # a half-open probe unused here would hold every write back a window
            return waiting
        started = time.perf_counter()
        try:
            results: list[bool | BackendError] = self._backend.flush_many(requests)
        except BackendError as error:
            results = [error] * len(requests)
        self._events.timed("flush_seconds", time.perf_counter() - started)
        left = waiting
        failure: BackendError | None = None
        for (session, keys, sizes, views), request, result in zip(written, requests, results, strict=True):
            if result is True:
                session.stored, session.shared = views
                session.counter, session.manifest = request.meta.counter, request.meta.manifest
                self._events.flush(FlushResult.OK, session.kernel_id, len(sizes))
                for key, nbytes in sizes.items():
                    self._events.synced(key, session.kernel_id, nbytes)
            elif result is False and session.reassert:
                # Fenced out by a takeover from before a reconnect that reached this kernel since
                # (it was in flight meanwhile): written again once that reconnect's hold is re-asserted.
                self._events.flush(FlushResult.REJECTED, session.kernel_id, len(sizes))
                self._requeue([(session, keys)], when=self._clock())
                left += len(keys)
            elif result is False:
                self._events.flush(FlushResult.REJECTED, session.kernel_id, len(sizes))
                with self._cond:
                    self._go_stale(session)
                if session.on_rejected is not None:
                    session.on_rejected(session)
            else:
                failure = result
                self._events.flush(FlushResult.ERROR, session.kernel_id, len(sizes))
                self._requeue([(session, keys)], when=self._clock() + RETRY_DELAY, retry=True)
                left += len(keys)
        self._guard.settle(failure)
        if failure is None and self._retrying:
            self._retry_now()
        return left

    def _take_claim(self, session: Session) -> bool:
        """Claim a session that started without write rights (``Restorer.claim``); False when the
        backend cannot be reached (the breaker and the stats heard of it). Refused for good, the
        session goes stale."""
        try:
            generation = self._claim(session.kernel_id, session.address, session.opened)
        except BackendError:
            return False
        if generation <= 0:
            with self._cond:
                self._go_stale(session)
            if generation < 0 and session.on_rejected is not None:
                session.on_rejected(session)  # a later connection holds it: this page is superseded
            return True
        with self._cond:
            session.generation, session.counter, session.stored = generation, 0, {}
            session.manifest = Meta.claimed(self._tag, 0).manifest
            session.claimed = True
        if self._retrying:
            self._retry_now()  # Redis answers again
        return True

    def _request(
        self, session: Session, reading: _Reading
    ) -> tuple[FlushRequest | None, dict[str, int], _Views]:
        """The fenced write of what ``reading`` reads, the sizes written, and both hashes as they
        will be after it."""
        values = session.snapshot(reading)
        # Stamps were read before the values: a change in between is then stamped later than the
        # value written here, and its own write (it is dirty again) wins over this one.
        changed_at = reading.stamps
        fields: dict[str, bytes] = {}
        removed: list[str] = []
        shared: dict[str, bytes] = {}
        shared_removed: list[str] = []
        stamps: dict[str, int] = {}
        for key, value in values.items():
            spec = self._registry.resolve(key)
            if spec is not None and spec.scope == "session":
                stamp = stamps[key] = (
                    changed_at[key] // 1000 if key in changed_at else next_stamp()
                )  # none: a re-sign
                bound = shared_binding(key, stamp, self._tag)
                envelope = self._encode(session, key, spec, value, shared_address(session.address), bound)
                if envelope is None:
                    shared_removed.append(key)
                else:
                    shared[key] = envelope
                continue
            envelope = self._encode(session, key, spec, value, session.address, key)
            if envelope is None:
                removed.append(key)  # a stale, smaller value must not be restored instead
            elif (held := session.stored.get(key)) is None or held[0] != envelope_tag(envelope):
                fields[key] = envelope  # else Redis holds it already: set back and forth, or set again
        unchanged = (None, {}, (session.stored, session.shared))
        if not (fields or removed or shared or shared_removed):
            return unchanged
        stored = dict(session.stored)
        for key in removed:
            stored.pop(key, None)
        self._fit(session, fields, removed, stored)
        shared_view = session.shared
        if shared or shared_removed:
            shared_view = dict(shared_view)
            for key in shared_removed:
                shared_view.pop(key, None)
            self._fit(session, shared, shared_removed, shared_view)
        if not (fields or removed or shared or shared_removed):
            return unchanged
        counter = session.counter % (COUNTER_MODULUS - 1) + 1  # 1 .. 2**32 - 1: 0 marks a claim
        key_id, mac = self._ring.sign_manifest(
            address=session.address,
            tag=self._tag,
            counter=counter,
            fields={name: tag for name, (tag, _) in stored.items()},
        )
        meta = Meta(self._tag, key_id, counter, mac, session.generation)
        request = FlushRequest(session.address, meta, fields, self._ttl, tuple(removed), bool(session.stored))
        sizes = {key: len(data) for key, data in fields.items()}
        if shared or shared_removed:
            request = attrs.evolve(
                request,
                shared={
                    key: pack_stamp(stamps[key]) + self._tag + envelope for key, envelope in shared.items()
                },
                shared_removed=tuple(shared_removed),
                shared_stamp=max((stamps[key] for key in shared_removed), default=0),
            )
            sizes.update((key, len(data)) for key, data in shared.items())
        return request, sizes, (stored, shared_view)

    def _fit(
        self,
        session: Session,
        fields: dict[str, bytes],
        removed: list[str],
        stored: dict[str, tuple[bytes, int]],
    ) -> None:
        """Add ``fields`` to ``stored`` within the session budget; the excess is dropped (its old
        value removed too, so a stale one is never restored), counted and logged once."""
        budget = self._session_budget
        total = sum(size for _, size in stored.values())
        dropped: dict[str, str] = {}
        for key in sorted(fields):
            envelope = fields[key]
            previous = stored.get(key)
            count = len(stored) + (previous is None)
            size = total - (previous[1] if previous else 0) + len(envelope)
            if budget.max_keys and count > budget.max_keys:
                dropped[key] = "keys"
            elif budget.max_bytes and size > budget.max_bytes:
                dropped[key] = "bytes"
            else:
                stored[key] = (envelope_tag(envelope), len(envelope))
                total = size
                continue
            del fields[key]
            if previous is not None:
                del stored[key]
                total -= previous[1]
                removed.append(key)
        if not dropped:
            return
        for over in ("keys", "bytes"):
            keys = [key for key, why in dropped.items() if why == over]
            if keys:
                self._events.over_budget(keys, session.kernel_id, over, budget.limit(over))

    def _encode(
        self, session: Session, key: str, spec: PersistedSpec | None, value: Any, address: str, bound: str
    ) -> bytes | None:
        """``value``'s envelope, signed for ``address`` and the field name ``bound``; None if it is
        not written (undeclared, unencodable or over its cap: each logged)."""
        if spec is None:
            logger.error(
                "persisted key %s is not declared; it was not written (kernel=%s)",
                quote(key),
                quote(session.kernel_id),
            )
            return None
        warn_at = spec.warn_bytes if spec.warn_bytes is not None else self._budget.warn_bytes
        drop_at = spec.max_bytes if spec.max_bytes is not None else self._budget.max_bytes
        try:
            # The payload cap leaves room for the envelope's own bytes, so a refusal comes before
            # the value is copied into the envelope, the batch and the connection's buffers.
            payload = spec.type_codec.dumps(value, max_bytes=max(drop_at - OVERHEAD, 1) if drop_at else None)
        except OversizeError as error:
            self._events.oversize(key, session.kernel_id, error.size + OVERHEAD, drop_at, dropped=True)
            return None
        except EncodeError as error:
            logger.error("%s; it was not written (kernel=%s)", error, quote(session.kernel_id))
            return None
        # Caps count the value as a restore decodes it: before compression, with the envelope's bytes.
        size = plain_size(payload, spec.version)
        if drop_at and size > drop_at:
            self._events.oversize(key, session.kernel_id, size, drop_at, dropped=True)
            return None
        if warn_at and size > warn_at:
            self._events.oversize(key, session.kernel_id, size, warn_at, dropped=False)
        return seal(
            self._ring,
            address=address,
            field=bound,
            codec=spec.codec_id,
            version=spec.version,
            payload=payload,
        )

    def _requeue(
        self, batch: list[tuple[Session, set[str]]], *, when: float | None, retry: bool = False
    ) -> None:
        with self._cond:
            for session, keys in batch:
                if session.stale or (session.closed and when is not None):
                    continue
                session.dirty |= keys
                if retry:
                    self._retrying.add(session)
                if when is not None and session.due is None:
                    self._schedule(session, when, exact=True)

    def _retry_now(self) -> None:
        """The backend took a write again: sessions waiting out ``RETRY_DELAY`` are due at once,
        so a recovery writes everything changed during the outage within one batch or two."""
        with self._cond:
            waiting, self._retrying = self._retrying, set()
            now = self._clock()
            for session in waiting:
                pending = session.dirty or session.reassert
                if pending and not (session.closed or session.stale) and (session.due is None or session.due > now):
                    self._schedule(session, now)
