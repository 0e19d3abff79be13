"""The engine end to end, without Solara: restore, write-behind, close reasons, drain, caps.

Every test runs against the in-process memory backend and a real redis-server.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from typing import Any

import attrs
import pytest
from engine_kit import (  # noqa: F401
    OLD_SECRET,
    SECRET,
    Cart,
    Kernel,
    backend_fixture,
    make_engine,
    settings_fixture,
    specs_fixture,
)
from support import wait_until

from solara_persisted.address import session_address
from solara_persisted.backends.base import Backend, FlushRequest, SessionBudget
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import envelope_tag
from solara_persisted.errors import SnapshotBusy
from solara_persisted.worker import BUSY_RETRY, Session


def test_failover_restores_typed_values(settings: Settings, backend: Backend, specs: dict[str, Any]) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    first = Kernel(a, kernel_id, cookie)
    assert first.restored.result == "miss"
    # A miss claims the session: an instance that held it before and wakes up is fenced out.
    assert backend.peek_generation(first.address) == first.restored.generation
    first.set("t.page", 7)
    first.set("t.cart", Cart(("book", "pen"), "XMAS"))
    first.set(specs["family"].key_for(uid=42), "red shoes")
    wait_until(
        lambda: (
            a.stats.block(enabled=True, breaker_state="closed")["flush_ok"] >= 1 and not a.writer.pending()
        )
    )
    a.writer.stop()  # instance A dies without a final flush

    b = make_engine(settings, backend)
    second = Kernel(b, kernel_id, cookie)
    assert second.restored.result == "success"
    assert second.restored.values == {
        "t.page": 7,
        "t.cart": Cart(("book", "pen"), "XMAS"),
        "user:42:query": "red shoes",
    }
    assert isinstance(second.restored.values["t.cart"].items, tuple)
    block = b.state_block()
    assert (block["restore_attempts"], block["restore_success"]) == (1, 1)
    assert block["restore_bytes_total"] > 0
    assert second.restored.generation > first.restored.generation


def test_an_event_between_a_batch_and_its_snapshot_is_written_whole(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """A batch names its keys, then reads their values; an event that ran in between set a key the
    batch named and one it did not. The write holds all of that event, never half of it (chaos seed
    1010: after a pause and a kill, a restore held one value of an event and not the other)."""
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend, flush_debounce=60.0)  # only the explicit flush below writes
    kernel = Kernel(a, kernel_id, cookie)
    kernel.event({"t.page": 1})
    snapshot = kernel.session.snapshot

    def late(keys: Any) -> Any:  # the batch is formed; the next event runs before the snapshot's lock
        kernel.session.snapshot = snapshot
        kernel.event({"t.page": 2, "t.blob": "two"})
        return snapshot(keys)

    kernel.session.snapshot = late
    assert a.writer.flush_now(kernel.session, timeout=5.0)
    left = a.writer.pending()
    a.writer.stop()  # instance A dies: nothing more is written
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert restored.values == {"t.page": 2, "t.blob": "two"}
    assert left == 0, "the event's other key rode on that write"


def test_superseded_instance_is_fenced_out(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    first = Kernel(a, kernel_id, cookie)
    first.set("t.page", 1)
    wait_until(lambda: a.stats.block(enabled=True, breaker_state="closed")["flush_ok"] == 1)
    b = make_engine(settings, backend)
    second = Kernel(b, kernel_id, cookie)
    assert second.restored.values["t.page"] == 1
    rejected: list[Session] = []
    first.session.on_rejected = rejected.append
    first.set("t.page", 99)  # the old owner keeps writing: fenced out
    wait_until(lambda: rejected)
    assert a.state_block()["flush_rejected"] == 1
    second.set("t.page", 2)
    wait_until(lambda: b.state_block()["flush_ok"] == 1)
    third = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert third.restored.values["t.page"] == 2


def test_foreign_secret_is_a_loud_hmac_bailout(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    Kernel(a, kernel_id, cookie).set("t.page", 5)
    wait_until(lambda: a.state_block()["flush_ok"] == 1)
    other = make_engine(settings, backend, secret_keys=(secrets.token_urlsafe(32),))
    with caplog.at_level(logging.INFO, logger="solara.state"):
        restored = other.restore(kernel_id, cookie)
    assert (restored.result, restored.cause, restored.values) == ("bailout", "hmac", {})
    assert other.state_block()["restore_bailout"] == 1
    assert any("restore result=bailout" in line and "cause=hmac" in line for line in caplog.messages)


def test_an_altered_field_fails_the_manifest_all_or_nothing(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    kernel = Kernel(a, kernel_id, cookie)
    kernel.set("t.page", 5)
    kernel.set("t.cart", Cart(("x",)))
    wait_until(lambda: a.state_block()["flush_ok"] == 1)
    # Someone with write access to the store flips a byte of one field, keeping the meta field.
    takeover = backend.takeover(kernel.address, a.schema_tag, 60, SessionBudget())
    assert takeover.meta is not None
    forged = bytearray(takeover.fields[b"t.page"])
    forged[-1] ^= 1
    meta = attrs.evolve(takeover.meta, generation=takeover.generation)
    assert backend.flush(FlushRequest(kernel.address, meta, {"t.page": bytes(forged)}, 60))
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause, dict(restored.values)) == ("bailout", "manifest", {})
    assert backend.peek_generation(kernel.address) is None, "the poisoned hash is deleted"


def test_a_wrongly_signed_envelope_under_a_valid_manifest_is_an_hmac_bailout(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    kernel = Kernel(a, kernel_id, cookie)
    kernel.set("t.page", 5)
    wait_until(lambda: a.state_block()["flush_ok"] == 1)
    takeover = backend.takeover(kernel.address, a.schema_tag, 60, SessionBudget())
    forged = bytearray(takeover.fields[b"t.page"])
    forged[-1] ^= 1
    # Only a holder of the secret could re-sign the manifest; the envelope's own MAC still fails.
    _, mac = a.ring.sign_manifest(
        address=kernel.address, tag=takeover.meta.tag, counter=9, fields={"t.page": envelope_tag(bytes(forged))}
    )
    meta = attrs.evolve(takeover.meta, counter=9, mac=mac, generation=takeover.generation)
    assert backend.flush(FlushRequest(kernel.address, meta, {"t.page": bytes(forged)}, 60))
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause, dict(restored.values)) == ("bailout", "hmac", {})


def test_schema_tag_bump_is_a_fresh_schema_restore(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    old = make_engine(settings, backend, schema_tag="v1")
    Kernel(old, kernel_id, cookie).set("t.page", 5)
    wait_until(lambda: old.state_block()["flush_ok"] == 1)
    new = make_engine(settings, backend, schema_tag="v2")
    restored = new.restore(kernel_id, cookie)
    assert (restored.result, dict(restored.values)) == ("fresh-schema", {})
    assert new.state_block()["restore_schema_reset"] == 1
    assert backend.peek_generation(session_address(cookie, kernel_id)) is not None, "a tag mismatch never deletes"


def test_rotation_restores_and_resigns_with_the_new_primary(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    old = make_engine(settings, backend, secret_keys=(OLD_SECRET,))
    Kernel(old, kernel_id, cookie).set("t.page", 5)
    wait_until(lambda: old.state_block()["flush_ok"] == 1)
    rolled = make_engine(settings, backend, secret_keys=(SECRET, OLD_SECRET))
    kernel = Kernel(rolled, kernel_id, cookie)
    assert kernel.restored.values == {"t.page": 5}
    assert kernel.restored.resign == {"t.page"}
    wait_until(lambda: rolled.state_block()["flush_ok"] == 1)
    # Once every instance signs with the new key, the old one can be dropped.
    dropped = make_engine(settings, backend, secret_keys=(SECRET,))
    assert dropped.restore(kernel_id, cookie).values == {"t.page": 5}


def test_size_caps_warn_and_drop_only_that_value(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    a = make_engine(settings, backend)
    kernel = Kernel(a, kernel_id, cookie)
    with caplog.at_level(logging.WARNING, logger="solara.state"):
        kernel.set("t.blob", "w" * 250)  # over the key's warn budget, under its max
        kernel.set("t.page", 1)
        wait_until(lambda: a.state_block()["flush_ok"] == 1)
        kernel.set("t.blob", "d" * 500)  # over the key's hard cap: skipped, stale value removed
        kernel.set("t.page", 2)
        wait_until(lambda: a.state_block()["flush_ok"] == 2)
    assert a.state_block()["sync_oversize_dropped"] == 1
    assert any("t.blob" in line for line in caplog.messages)
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert restored.values == {"t.page": 2}


def test_page_close_deletes_other_closes_leave_state(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    a = make_engine(settings, backend, flush_debounce=60.0)  # only the final flush writes
    kernels = {}
    for reason in ("page-close", "cull", "superseded", "server-shutdown", "evicted"):
        kernel_id = uuid.uuid4().hex
        kernels[reason] = session_address("cookie", kernel_id)
        kernel = Kernel(a, kernel_id, "cookie")
        kernel.set("t.page", 3)
        with caplog.at_level(logging.INFO, logger="solara.state"):
            a.close_session(kernel.session, reason)  # type: ignore[arg-type]
    assert backend.peek_generation(kernels["page-close"]) is None
    for reason in ("cull", "superseded", "server-shutdown", "evicted"):
        assert backend.peek_generation(kernels[reason]) is not None, reason
    assert any("close reason=page-close" in line and "deleted=true" in line for line in caplog.messages)
    assert any("close reason=cull" in line and "deleted=false" in line for line in caplog.messages)
    assert a.state_block()["superseded_closes"] == 1


def test_a_value_redis_holds_already_is_not_written_again(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    a = make_engine(settings, backend, flush_debounce=60.0)  # each write below is an explicit flush
    kernel = Kernel(a, uuid.uuid4().hex, "cookie")
    kernel.set("t.page", 1)
    kernel.set("t.cart", Cart(items=("pen",)))
    assert a.writer.flush_now(kernel.session, timeout=5.0)
    assert a.state_block()["flush_ok"] == 1
    kernel.set("t.page", 2)
    kernel.set("t.page", 1)  # back within one window
    kernel.set("t.cart", Cart(items=("pen",)))  # set again, equal
    assert a.writer.flush_now(kernel.session, timeout=5.0)
    assert a.state_block()["flush_ok"] == 1  # no round trip at all
    kernel.set("t.page", 3)
    kernel.set("t.cart", Cart(items=("pen",)))
    assert a.writer.flush_now(kernel.session, timeout=5.0)
    assert a.state_block()["flush_ok"] == 2
    assert a.state_block()["sync_count"] == 3  # t.page twice, t.cart once: the equal cart was not sent again
    b = make_engine(settings, backend)
    assert b.restore(kernel.session.kernel_id, "cookie").values == {"t.page": 3, "t.cart": Cart(items=("pen",))}


def test_a_large_value_is_stored_compressed_and_restores_equal(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    a = make_engine(settings, backend, flush_debounce=60.0)
    kernel = Kernel(a, uuid.uuid4().hex, "cookie")
    cart = Cart(items=tuple(f"item-{i:05d}" for i in range(5000)), coupon="SPRING")
    as_json = len(json.dumps(attrs.asdict(cart)))
    kernel.set("t.cart", cart)
    assert a.writer.flush_now(kernel.session, timeout=5.0)
    assert a.state_block()["sync_bytes_total"] < 0.3 * as_json  # what Redis was sent and holds
    b = make_engine(settings, backend)
    assert b.restore(kernel.session.kernel_id, "cookie").values == {"t.cart": cart}


def test_windows_closing_close_together_share_one_round_trip(
    settings: Settings, backend: Backend, specs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a steady trickle of changes each session's window would close alone, one round trip per
    session (issue 13). A batch takes every window closing within a quarter of the debounce with
    it; one further off waits for its own, and the first still waits out its whole window."""
    batches: list[tuple[float, list[str]]] = []
    flush_many = backend.flush_many

    def recording(requests: list[FlushRequest]) -> list[Any]:
        batches.append((time.monotonic(), sorted(request.address for request in requests)))
        return flush_many(requests)

    monkeypatch.setattr(backend, "flush_many", recording)
    a = make_engine(settings, backend, flush_debounce=2.0)
    first, second, third = (Kernel(a, uuid.uuid4().hex, "cookie") for _ in range(3))
    started = time.monotonic()
    first.set("t.page", 1)
    time.sleep(0.1)
    second.set("t.page", 2)  # closes 0.1 s after the first: inside the quarter (0.5 s)
    time.sleep(0.9)
    third.set("t.page", 3)  # closes 1 s or more after the first: its own batch
    wait_until(lambda: len(batches) == 2, "two batches")
    assert [addresses for _, addresses in batches] == [
        sorted([first.address, second.address]),
        [third.address],
    ]
    assert batches[0][0] - started >= 2.0
    b = make_engine(settings, backend)
    for number, kernel in enumerate((first, second, third), start=1):
        assert b.restore(kernel.session.kernel_id, "cookie").values == {"t.page": number}


def test_a_busy_kernel_is_not_tried_again_early_with_another_sessions_batch(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """A kernel mid-event waits ``BUSY_RETRY`` before its next try. A batch formed sooner for
    another session (here a reconnect's, due at once) took it along while its window was being
    coalesced, and each early try can cost the writer a ``SNAPSHOT_WAIT`` for nothing."""
    a = make_engine(settings, backend, flush_debounce=2.0)  # coalesces 0.5 s: ten retries' worth
    busy, other = Kernel(a, uuid.uuid4().hex, "cookie"), Kernel(a, uuid.uuid4().hex, "cookie")
    tries: list[float] = []
    mid_event = True

    def snapshot(keys: Any) -> Any:
        tries.append(time.monotonic())
        if mid_event:
            raise SnapshotBusy("mid-event")
        return busy.snapshot(keys)

    busy.session.snapshot = snapshot
    busy.set("t.page", 1)
    assert a.writer.flush_now(busy.session, timeout=5.0) is False  # mid-event: retried later
    other.set("t.page", 2)
    assert other.reconnect()  # its changes are due at once: a batch forms now
    wait_until(lambda: other.session.counter > 0, "the reconnect's batch")
    mid_event = False
    wait_until(lambda: len(tries) >= 2, "the retry")
    assert tries[1] - tries[0] >= BUSY_RETRY
    assert a.writer.flush_now(busy.session, timeout=5.0)
    b = make_engine(settings, backend)
    assert b.restore(busy.session.kernel_id, "cookie").values == {"t.page": 1}


def test_drain_writes_every_session_in_batches(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    a = make_engine(settings, backend, flush_debounce=60.0)
    kernels = [Kernel(a, uuid.uuid4().hex, "cookie") for _ in range(1500)]
    for number, kernel in enumerate(kernels):
        kernel.set("t.page", number)
    assert a.drain(timeout=30.0) == 0
    assert a.state_block()["flush_ok"] == len(kernels)
    b = make_engine(settings, backend)
    assert b.restore(kernels[1234].session.kernel_id, "cookie").values == {"t.page": 1234}


def test_stats_tables_name_the_costly_key(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    a = make_engine(settings, backend, production=False)  # development shows raw key labels
    kernel = Kernel(a, uuid.uuid4().hex, "cookie")
    kernel.set("t.cart", Cart(tuple(f"item{i}" for i in range(20))))
    kernel.set("t.page", 1)
    # both keys' sync events, not only the flush's: the writer counts the flush before the keys
    wait_until(lambda: a.state_block()["sync_count"] == 2)
    block = a.state_block()
    assert [row["key"] for row in block["sync_by_key"]] == ["t.cart", "t.page"]
    assert block["sync_by_kernel"][0]["kernel"] == kernel.session.kernel_id[:8]
    assert block["sync_count"] == 2
    token = secrets.token_urlsafe(24)
    hashed = attrs.evolve(a.settings, production=True, resourcez_token=token)
    a.settings = hashed
    assert a.state_block()["sync_by_key"][0]["key"].startswith("sha256:")
    assert a.state_block(authorization="Bearer " + token)["sync_by_key"][0]["key"] == "t.cart"


def test_mismatched_key_rings_across_the_fleet_are_reported(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    a = make_engine(settings, backend)
    b = make_engine(settings, backend)
    assert b.check_key_rings() == {a.instance_id: a.ring.fingerprint(), b.instance_id: b.ring.fingerprint()}
    assert b.state_block()["fleet_key_ring_mismatch"] is False
    stray_secret = secrets.token_urlsafe(32)
    stray = Engine(attrs.evolve(settings, secret_keys=(stray_secret,)), backend=backend)  # no background check
    with caplog.at_level(logging.WARNING, logger="solara.state"):
        stray.check_key_rings()
        stray.check_key_rings()  # one line when the fleet starts to disagree, not one per check
    block = stray.state_block()
    assert block["fleet_key_ring_mismatch"] is True
    assert block["fleet_key_rings"] == {a.ring.fingerprint(): 2, stray.ring.fingerprint(): 1}
    assert len([line for line in caplog.messages if line.startswith("keyring mismatch")]) == 1
    assert stray_secret not in " ".join(caplog.messages), "only fingerprints are ever shown"
    for engine in (a, b, stray):
        engine.close()


def test_a_snapshot_that_raises_is_that_kernels_failure_retried_not_the_writers_end(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot runs the app's code (a reactive's default set up again after a clear()); when it
    raises, the writer logs it, tries that kernel again later and goes on writing the others."""
    engine = make_engine(settings, backend)
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    broken, fine = Kernel(engine, kernel_id, cookie), Kernel(engine, uuid.uuid4().hex, cookie)
    snapshot = broken.session.snapshot

    def raises_once(keys: Any) -> Any:
        broken.session.snapshot = snapshot
        raise RuntimeError("the app's default factory failed")

    broken.session.snapshot = raises_once
    with caplog.at_level(logging.ERROR, logger="solara.state"):
        broken.set("t.page", 4)
        fine.set("t.page", 5)
        wait_until(lambda: engine.state_block()["flush_ok"] == 2 and not engine.writer.pending(), "both written")
    assert any("could not be read; retried" in message for message in caplog.messages)
    assert engine.writer._thread is not None and engine.writer._thread.is_alive()
    assert make_engine(settings, backend).restore(kernel_id, cookie).values == {"t.page": 4}


def test_a_batch_that_fails_on_a_bug_is_retried_and_the_writer_lives_on(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails inside a batch (here a backend answering one result too many) is logged and
    retried: the thread that writes every session of the process never ends on it."""
    engine = make_engine(settings, backend)
    flush_many = backend.flush_many
    calls: list[int] = []

    def one_result_too_many(requests: Any) -> Any:
        calls.append(len(requests))
        results = flush_many(requests)
        return [*results, True] if len(calls) == 1 else results

    engine.writer._backend.flush_many = one_result_too_many  # type: ignore[method-assign]
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    kernel = Kernel(engine, kernel_id, cookie)
    with caplog.at_level(logging.ERROR, logger="solara.state"):
        kernel.set("t.page", 6)
        wait_until(lambda: any("write batch of 1 sessions failed" in m for m in caplog.messages), "the report")
    kernel.set("t.page", 7)  # the same thread writes on
    wait_until(lambda: len(calls) == 2 and not engine.writer.pending(), "the next write")
    assert engine.writer._thread is not None and engine.writer._thread.is_alive()
    assert make_engine(settings, backend).restore(kernel_id, cookie).values == {"t.page": 7}
