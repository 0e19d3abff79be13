"""Apps written against Solara's own persist API, in process: real kernel contexts, a real redis-server.

Every ``persist=True`` / ``PersistConfig`` reactive is persisted by our engine under the key
Solara gives it (derived or explicit), next to ``@persisted`` specs, through the same restore,
fenced writes, budgets, log lines and ``/resourcez``; a key declared both ways is refused at
import in either order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import linecache
import logging
import re
import secrets
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import attrs
import pytest
import solara
import solara.server.starlette  # a Solara server process: reactives scope per kernel
import solara.settings
from click.testing import CliRunner
from solara.server import kernel, kernel_context
from solara.state.derive import PersistKeyError
from starlette.testclient import TestClient
from support import REPO, wait_until

from solara_persisted import Rename, migration, solara_integration
from solara_persisted.cli import main
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.errors import DuplicateKeyError, EncodeError, SpecError
from solara_persisted.schema import apps
from solara_persisted.spec import persisted, registry

APP = REPO / "tests" / "apps" / "both_styles.py"
MAX_VALUE_BYTES = 50_000


@dataclasses.dataclass
class Parcel:
    """Picklable, and of no JSON form: only the pickle serializer can store it."""

    weight: float


@pytest.fixture
def engine(redis_url: str) -> Iterator[Engine]:
    settings = Settings(
        backend="redis",
        url=redis_url,
        prefix=f"p{uuid.uuid4().hex[:6]}:",
        secret_keys=(secrets.token_urlsafe(32),),
        flush_debounce=0.05,
        warn_value_bytes=MAX_VALUE_BYTES // 2,
        max_value_bytes=MAX_VALUE_BYTES,
        session_http_only=True,
        production=False,
    )
    active = solara_integration.activate(settings)
    yield active
    for context in list(kernel_context.contexts.values()):
        if isinstance(context.state_persistence, solara_integration.KernelPersistence):
            context.close(reason="cull")
    solara_integration.deactivate()


@pytest.fixture(params=[False, True], ids=["plain", "mutation-detection"])
def app(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app, freshly executed into an empty registry; with Solara's mutation detection on or off."""
    monkeypatch.setattr(solara.settings.storage, "mutation_detection", request.param)
    with registry.isolated():
        (module,) = apps.load_apps([str(APP)])
        yield module


def new_context(kernel_id: str, session_id: str) -> kernel_context.VirtualKernelContext:
    context = kernel_context.VirtualKernelContext(id=kernel_id, session_id=session_id, kernel=kernel.Kernel())
    kernel_context.contexts[kernel_id] = context
    return context


def storage_key(reactive: Any) -> str:
    store = reactive._storage
    return getattr(store, "_storage", store).storage_key  # mutation detection wraps the kernel store


def settled(engine: Engine, flushes: int = 1) -> None:
    wait_until(
        lambda: engine.state_block()["flush_ok"] >= flushes and not engine.writer.pending(), "writes settled"
    )


def changed_values(app: ModuleType) -> dict[Any, Any]:
    """A new value for every persisted reactive of the app, each a kind its default has."""
    return {
        app.count: 7,
        app.query: "red shoes",
        app.history: [("a", 1), {"at": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)}, b"\x00\xff"],
        app.visited: frozenset({"home", "cart"}),
        app.picked: {"sku": "A-1", "qty": Decimal("2.50"), "tags": {"x"}},
        app.filters: app.Filters("shoes", 80.0, frozenset({"sale"})),
        app.draft: app.Draft([(1, 2)], {"seen": {uuid.UUID(int=5)}}),
        app.due: dt.date(2025, 2, 3),
        app.Prefs.theme: app.Theme.DARK,
        app.Prefs.token: uuid.UUID(int=9),
        app.page: 4,
        app.budget: Decimal("12.5"),
    }


def test_every_key_is_the_one_solara_gives(app: ModuleType) -> None:
    module = app.__name__
    untyped = {spec.key: spec for spec in registry.untyped()}
    assert sorted(untyped) == sorted(
        [
            f"{module}:count",
            f"{module}:query",
            f"{module}:Prefs.theme",
            "both.history",
            "both.visited",
            "both.picked",
            "both.filters",
            "both.draft",
            "both.due",
            "both.prefs.token",
        ]
    )
    assert storage_key(app.count) == f"{module}:count"  # Solara's storage key is the persist key
    assert storage_key(app.Prefs.theme) == f"{module}:Prefs.theme"
    assert untyped[f"{module}:count"].site == "tests/apps/both_styles.py:45"
    assert [spec.key for spec in registry.specs()] == ["both.budget", "both.page"], "typed specs stay apart"


def test_both_styles_restore_exactly_after_the_instance_is_lost(engine: Engine, app: ModuleType) -> None:
    kernel_id, cookie = uuid.uuid4().hex, "cookie"
    values = changed_values(app)
    first = new_context(kernel_id, cookie)
    with first:
        assert app.count.value == 0 and app.page.value == 1
        for reactive, value in values.items():
            reactive.value = value
    settled(engine)
    first.close(reason="cull")  # the instance is gone; the state stays for the TTL

    second = new_context(kernel_id, cookie)
    with second:
        for reactive, value in values.items():
            restored = reactive.value
            assert restored == value and type(restored) is type(value), reactive
        assert type(app.history.value[0]) is tuple
    assert second.state_persistence.last_restore["nFields"] == len(values)
    block = engine.state_block()
    assert (block["restore_success"], block["restore_bailout"]) == (1, 0)
    top = TestClient(solara.server.starlette.app).get("/resourcez").json()["state"]["sync_by_key"]
    assert {"both.history", "both.draft"} <= {row["key"] for row in top}, "persist=True keys are counted too"

    with second:
        app.count.value = 8  # the restored kernel writes on, fenced by its new generation
    settled(engine, 2)
    second.close(reason="page-close")
    assert engine.restore(kernel_id, cookie).result == "miss", "a genuine tab close deletes both styles"


def test_in_development_what_has_no_json_form_is_refused_at_the_set(engine: Engine, app: ModuleType) -> None:
    context = new_context(uuid.uuid4().hex, "cookie")
    with context:
        with pytest.raises(EncodeError, match=r"^persisted key both\.history\[1\]\[\"item\"\]: Product"):
            app.history.value = [1, {"item": app.Product("B-2")}]
        app.count.value = 3  # encodable values go on as before
    context.close(reason="cull")


def test_what_has_no_json_form_is_refused_at_write_naming_key_path_and_fix(
    engine: Engine, app: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    solara_integration.deactivate()  # production: no encoding work at .set(); the writer refuses it
    engine = solara_integration.activate(attrs.evolve(engine.settings, production=True))
    kernel_id = uuid.uuid4().hex
    context = new_context(kernel_id, "cookie")
    with caplog.at_level(logging.INFO, logger="solara.state"), context:
        app.count.value = 3
        app.picked.value = app.Product("A-1")  # a model assigned into a None default
        app.history.value = [1, {"item": app.Product("B-2")}]
        app.query.value = "x" * (MAX_VALUE_BYTES + 1)  # over the value budget: dropped, counted
        settled(engine)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        line.startswith("persisted key both.picked: Product has no JSON form here")
        and "@persisted(key='both.picked', version=1)" in line
        for line in errors
    ), errors
    assert any(line.startswith('persisted key both.history[1]["item"]: Product') for line in errors), errors
    assert engine.state_block()["sync_oversize_dropped"] == 1
    context.close(reason="cull")
    restored = engine.restore(kernel_id, "cookie")
    assert dict(restored.values) == {f"{app.__name__}:count": 3}


def test_pickle_keeps_its_deployer_gate(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"pickled.{uuid.uuid4().hex[:8]}"
    with registry.isolated():
        monkeypatch.delenv("SOLARA_STATE_ALLOW_PICKLE", raising=False)
        with pytest.raises(SpecError, match='uses serializer="pickle", which the deployment has not allowed'):
            solara.reactive(Parcel(1.0), persist=solara.PersistConfig(key=key, serializer="pickle"))
        monkeypatch.setenv("SOLARA_STATE_ALLOW_PICKLE", "true")
        parcel = solara.reactive(
            Parcel(1.0), persist=solara.PersistConfig(key=key + "b", serializer="pickle")
        )
        assert registry.get(key + "b").codec_name == "pickle"
        kernel_id = uuid.uuid4().hex
        context = new_context(kernel_id, "cookie")
        with context:
            parcel.value = Parcel(2.5)
        settled(engine)
        context.close(reason="cull")
        with new_context(kernel_id, "cookie"):
            assert parcel.value == Parcel(2.5)


def both_sites(error: DuplicateKeyError) -> tuple[str, str, str]:
    """The refused site and the source lines of the two declarations the message names."""
    found = re.search(
        r"with @persisted at (\S+):(\d+) and with Solara's persist=True at (\S+):(\d+)", str(error)
    )
    assert found, str(error)
    typed = linecache.getline(found[1], int(found[2])).strip()
    builtin = linecache.getline(found[3], int(found[4])).strip()
    return error.site, typed, builtin


def test_a_key_declared_both_ways_is_refused_naming_both_sites() -> None:
    key = f"twice.{uuid.uuid4().hex[:8]}"
    with registry.isolated():

        @persisted(key=key)
        def typed() -> int:
            return 0

        with pytest.raises(DuplicateKeyError) as first:
            solara.reactive(0, persist=True, key=key)  # the later declaration is refused
        site, typed_line, builtin_line = both_sites(first.value)
        assert (typed_line, builtin_line) == (
            "@persisted(key=key)",
            "solara.reactive(0, persist=True, key=key)  # the later declaration is refused",
        )
        assert site.startswith("tests/test_persist_true.py:")
        assert registry.get(key).untyped is False

    with registry.isolated():
        builtin = solara.reactive(0, persist=True, key=key + "b")
        with pytest.raises(DuplicateKeyError) as second:

            @persisted(key=key + "b")
            def typed_later() -> int:
                return 0

        site, typed_line, builtin_line = both_sites(second.value)
        assert (typed_line, builtin_line) == (
            '@persisted(key=key + "b")',
            'builtin = solara.reactive(0, persist=True, key=key + "b")',
        )
        assert registry.get(key + "b").untyped and builtin is not None


def test_reactives_solara_registered_before_the_import_are_adopted_too() -> None:
    script = textwrap.dedent(
        """
        import solara
        early = solara.reactive((1, 2), persist=True, key="early.pair")
        import solara_persisted
        late = solara.reactive(0, persist=True, key="late.count")
        print(sorted((s.key, s.site.rsplit(":", 1)[1], type(s.type_codec).__name__) for s in solara_persisted.registry.untyped()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('early.pair', '3', 'UntypedCodec'), ('late.count', '5', 'UntypedCodec')]"


def test_codegen_and_check_list_persist_true_reactives_as_untyped_with_the_fix(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    with registry.isolated():
        generated = CliRunner().invoke(main, ["codegen", str(APP), "--schemas-dir", str(schemas)])
    assert generated.exit_code == 0, generated.output
    assert sorted(path.name for path in schemas.iterdir()) == ["both.budget", "both.page"], (
        "no schema for untyped"
    )
    with registry.isolated():
        checked = CliRunner().invoke(main, ["check", str(APP), "--schemas-dir", str(schemas)])
    assert checked.exit_code == 0, checked.output
    assert "check passed" in checked.output
    for output in (generated.output, checked.output):
        assert (
            "untyped (persist=True) both.picked (declared at tests/apps/both_styles.py:51, json "
            "following its default NoneType): no schema, no versions; to evolve it safely declare it with "
            "@persisted(key='both.picked', version=1) over a default factory annotated with its type"
        ) in output
        assert output.count("untyped (persist=True) ") == 10


def test_a_persist_true_key_has_no_versions_to_migrate(app: ModuleType) -> None:
    with pytest.raises(
        SpecError, match=re.escape("'both.history' is declared with Solara's persist=True, which has no type")
    ):
        migration("both.history", from_version=1, ops=[Rename("a", "b")])


def test_a_class_body_reactive_whose_key_never_resolved_refuses_the_kernel_loudly(engine: Engine) -> None:
    class Holder:
        reactives: ClassVar = {"lost": solara.reactive(0, persist=True)}  # no attribute name: no key

    with pytest.raises(PersistKeyError, match="never received a __set_name__ call"):
        new_context(uuid.uuid4().hex, "cookie")
    del Holder
    gc.collect()  # Solara's pending list holds it weakly: gone, the next kernel starts
    new_context(uuid.uuid4().hex, "cookie")
