"""The declaration DSL: reactives, families, the registry, and every declaration-time refusal."""

from __future__ import annotations

import importlib.util
import linecache
import re
import string
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import solara
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from solara_persisted import spec as spec_module
from solara_persisted.codec import PickleTypeCodec, TypeCodec
from solara_persisted.envelope import Codec
from solara_persisted.errors import DuplicateKeyError, InvalidIdentifierError, SpecError, UnsupportedTypeError
from solara_persisted.spec import (
    MAX_KEY_LENGTH,
    STORAGE_PREFIX,
    Family,
    _could_be_key,
    _Template,
    key_from_storage_key,
    key_problem,
    persisted,
    persisted_family,
    registry,
)

HERE = Path(__file__).name


@attrs.frozen
class Query:
    text: str = ""
    page: int = 0


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    with registry.isolated():
        yield


def _next_line() -> int:
    """The number of the first non-blank line after the caller's, to pin a declaration's site."""
    caller = sys._getframe(1)
    number = caller.f_lineno + 1
    while not linecache.getline(caller.f_code.co_filename, number).strip():
        number += 1
    return number


def _refusal(error: type[SpecError], line: int, declare: Any) -> SpecError:
    with pytest.raises(error) as info:
        declare()
    assert info.value.site.endswith(f"{HERE}:{line}"), info.value.site
    assert str(info.value).startswith(info.value.site + ": ")
    assert info.value.fix and "Fix: " in str(info.value)
    return info.value


# --------------------------------------------------------------------------- the decorator


def test_decorator_makes_a_reactive_holding_the_default() -> None:
    line = _next_line()

    @persisted(key="shop.page", version=3, warn_bytes=100, max_bytes=1000)
    def page() -> int:
        return 0

    assert isinstance(page, solara.Reactive)
    assert page.value == 0
    page.value = 5
    assert page.value == 5
    spec = registry.get("shop.page")
    assert spec is not None and spec.reactive is page
    assert (spec.key, spec.type, spec.version, spec.warn_bytes, spec.max_bytes) == (
        "shop.page",
        int,
        3,
        100,
        1000,
    )
    assert spec.codec_name == "json" and spec.codec_id is Codec.JSON and not spec.is_template
    assert spec.site.endswith(f"{HERE}:{line}")
    assert spec.default() == 0
    assert isinstance(spec.type_codec, TypeCodec)
    assert spec.type_codec.loads(spec.type_codec.dumps(7)) == 7


def test_storage_key_maps_back_to_the_persisted_key() -> None:
    @persisted(key="shop.cart.query")
    def query() -> Query:
        return Query()

    storage_key = query._storage.storage_key  # type: ignore[attr-defined]
    assert storage_key == STORAGE_PREFIX + "shop.cart.query"
    assert key_from_storage_key(storage_key) == "shop.cart.query"
    assert key_from_storage_key("some_other_reactive") is None
    assert query.value == Query()


def test_each_read_of_a_fresh_store_calls_the_factory_for_a_new_default() -> None:
    calls = []

    @persisted(key="shop.tags")
    def tags() -> list[str]:
        calls.append(1)
        return []

    assert len(calls) == 1  # the declaration checks the default once
    assert tags.value == []
    assert len(calls) == 2


def test_string_annotations_and_classes_resolve() -> None:
    @persisted(key="shop.ids")
    def ids() -> dict[str, uuid.UUID]:
        return {}

    spec = registry.get("shop.ids")
    assert spec is not None and spec.type == dict[str, uuid.UUID]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "the key is empty"),
        (5, "the key must be a str, got int"),
        ("k" * 201, "201 characters long, over the maximum of 200"),
        (" shop.page", "leading or trailing whitespace"),
        ("shop.page\n", "leading or trailing whitespace"),
        ("shop\x00page", "control or format character '\\x00'"),
        ("shop\u200bpage", "control or format character"),
        ("user:{uid}", "contains braces"),
    ],
)
def test_bad_keys_are_refused_with_site_and_fix(key: Any, problem: str) -> None:
    line = _next_line()
    error = _refusal(SpecError, line, lambda: persisted(key=key))
    assert problem in error.problem


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"version": 0}, "version must be an int >= 1, got 0"),
        ({"version": True}, "version must be an int >= 1, got True"),
        ({"version": 1.0}, "version must be an int >= 1, got 1.0"),
        ({"warn_bytes": 0}, "warn_bytes must be a positive int"),
        ({"max_bytes": -1}, "max_bytes must be a positive int"),
        ({"max_bytes": True}, "max_bytes must be a positive int"),
        ({"warn_bytes": 10, "max_bytes": 5}, "warn_bytes=10 is above max_bytes=5"),
        ({"codec": "msgpack"}, "codec must be 'json' or 'pickle'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    line = _next_line()
    error = _refusal(SpecError, line, lambda: persisted(key="shop.page", **options))
    assert problem in error.problem


def test_missing_return_annotation_is_refused() -> None:
    def declare() -> None:
        @persisted(key="shop.page")
        def page():  # type: ignore[no-untyped-def]
            return 0

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "has no return annotation" in error.problem
    assert "def page() -> int" in error.fix


def test_unresolvable_annotation_is_refused() -> None:
    def declare() -> None:
        @persisted(key="shop.page")
        def page() -> NotDefinedAnywhere:  # type: ignore[name-defined]  # noqa: F821
            return 0

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "cannot be resolved" in error.problem and "NotDefinedAnywhere" in error.problem


def test_unrepresentable_type_is_refused_with_the_offending_part() -> None:
    def declare() -> None:
        @persisted(key="shop.page")
        def page() -> dict[int, str]:
            return {}

    error = _refusal(UnsupportedTypeError, declare.__code__.co_firstlineno + 1, declare)
    assert "dict key type int in dict[int, str]" in error.problem
    assert "dict[str, ...]" in error.fix


def test_default_that_does_not_match_its_type_is_refused_with_the_path() -> None:
    def declare() -> None:
        @persisted(key="shop.page")
        def page() -> list[int]:
            return [1, "2"]  # type: ignore[list-item]

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "the default does not match its own type list[int] at [1]: expected int, got str" in error.problem


def test_failing_default_factory_is_refused() -> None:
    def declare() -> None:
        @persisted(key="shop.page")
        def page() -> int:
            raise RuntimeError("no database at import time")

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "calling the default factory failed: RuntimeError: no database at import time" in error.problem


def test_decorating_something_that_is_not_a_factory_is_refused() -> None:
    line = _next_line()
    error = _refusal(SpecError, line, lambda: persisted(key="shop.page")(42))  # type: ignore[arg-type]
    assert "decorates a default factory" in error.problem


def test_the_same_key_from_two_definitions_names_both_sites() -> None:
    first = _next_line()

    @persisted(key="shop.page")
    def page() -> int:
        return 0

    second = _next_line()

    def declare_again() -> None:
        @persisted(key="shop.page")
        def other_page() -> int:
            return 1

    error = _refusal(DuplicateKeyError, second + 1, declare_again)
    assert f"already declared at {registry.get('shop.page').site}" in error.problem  # type: ignore[union-attr]
    assert registry.get("shop.page").site.endswith(f"{HERE}:{first}")  # type: ignore[union-attr]
    assert "unique" in error.fix
    assert registry.get("shop.page").reactive is page  # type: ignore[union-attr]


def test_pickle_needs_the_deployer_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLARA_STATE_ALLOW_PICKLE", raising=False)

    def declare() -> None:
        @persisted(key="legacy.blob", codec="pickle")
        def blob() -> object:
            return object()

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "SOLARA_STATE_ALLOW_PICKLE=true" in error.fix
    assert "legacy.blob" not in registry

    monkeypatch.setenv("SOLARA_STATE_ALLOW_PICKLE", "true")

    @persisted(key="legacy.blob", codec="pickle")
    def blob() -> complex:
        return complex(1, 2)

    spec = registry.get("legacy.blob")
    assert spec is not None and spec.codec_id is Codec.PICKLE and isinstance(spec.type_codec, PickleTypeCodec)
    assert spec.type_codec.loads(spec.type_codec.dumps(blob.value)) == complex(1, 2)


def test_an_unpicklable_default_is_refused_even_with_the_gate_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLARA_STATE_ALLOW_PICKLE", "true")

    def declare() -> None:
        @persisted(key="legacy.fn", codec="pickle")
        def fn() -> object:
            return lambda: 0

    error = _refusal(SpecError, declare.__code__.co_firstlineno + 1, declare)
    assert "cannot be pickled" in error.problem


# --------------------------------------------------------------------------- re-running a definition


APP_SOURCE = """
from solara_persisted.spec import persisted, persisted_family

@persisted(key="app.count")
def count() -> int:
    return {default}

queries = persisted_family("app:{{uid}}:query", type=str, default="")
"""


def _import_fresh(path: Path, default: int) -> Any:
    """Execute the module in a fresh namespace, as Solara's hot reload does."""
    path.write_text(APP_SOURCE.format(default=default))
    module_spec = importlib.util.spec_from_file_location("reloaded_app", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_reloading_a_module_replaces_its_declarations(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    first = _import_fresh(path, 0)
    second = _import_fresh(path, 7)
    spec = registry.get("app.count")
    assert spec is not None and spec.reactive is second.count and spec.reactive is not first.count
    assert spec.default() == 7
    assert registry.get("app:{uid}:query") is second.queries.spec
    assert len(registry) == 2


def test_reloading_an_edited_module_drops_keys_it_no_longer_declares(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    _import_fresh(path, 0)
    path.write_text(
        'from solara_persisted.spec import persisted\n\n@persisted(key="app.other")\ndef other() -> int:\n    return 0\n'
    )
    module_spec = importlib.util.spec_from_file_location("reloaded_app", path)
    assert module_spec is not None and module_spec.loader is not None
    module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    assert [spec.key for spec in registry.specs()] == ["app.other"]


def test_re_running_the_same_line_replaces_it() -> None:
    reactives = []
    for default in (1, 2):

        @persisted(key="loop.value")
        def value() -> int:
            return default  # noqa: B023 - each declaration replaces the previous one

        reactives.append(value)
    spec = registry.get("loop.value")
    assert spec is not None and spec.reactive is reactives[-1]
    assert len(registry) == 1


def test_a_redefined_function_in_the_same_namespace_replaces_it() -> None:
    """An edited notebook cell: new file name, same namespace, same function name."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for cell, default in (("<cell-1>", 1), ("<cell-2>", 2)):
        source = f'from solara_persisted.spec import persisted\n@persisted(key="nb.value")\ndef value() -> int:\n    return {default}\n'
        exec(compile(source, cell, "exec"), namespace)
    spec = registry.get("nb.value")
    assert spec is not None and spec.default() == 2 and spec.site == "<cell-2>:2"


# --------------------------------------------------------------------------- families


def test_family_gives_one_reactive_per_concrete_key() -> None:
    line = _next_line()
    queries = persisted_family("user:{uid}:query", type=Query, default=Query, version=2)
    assert isinstance(queries, Family)
    first = queries(uid=5)
    assert queries(uid=5) is first
    assert queries(uid="5") is first
    assert queries(uid=6) is not first
    assert first.value == Query()
    first.value = Query("shoes", 2)
    assert queries(uid=5).value == Query("shoes", 2)
    assert queries(uid=6).value == Query()
    assert first._storage.storage_key == STORAGE_PREFIX + "user:5:query"  # type: ignore[attr-defined]
    assert queries.key_for(uid=5) == "user:5:query"
    spec = queries.spec
    assert spec.is_template and spec.reactive is None and spec.version == 2
    assert spec.site.endswith(f"{HERE}:{line}")
    assert registry.get("user:{uid}:query") is spec
    assert registry.resolve("user:5:query") is spec
    assert registry.resolve("user:a:b:query") is spec
    assert registry.resolve("user::query") is None
    assert registry.resolve("user:5:other") is None


def test_family_value_default_is_copied_per_kernel() -> None:
    lists = persisted_family("list:{name}", type=list[int], default=[])
    first = lists.spec.default()
    first.append(1)
    assert lists.spec.default() == []


def test_family_parameters_are_checked() -> None:
    queries = persisted_family("user:{uid}:{tab}", type=str, default="")
    line = _next_line()
    error = _refusal(SpecError, line, lambda: queries(uid=1, page=2))
    assert "missing tab" in error.problem and "unexpected page" in error.problem
    assert "family(uid=..., tab=...)" in error.fix
    for bad, problem in (
        ("", "is empty"),
        ("a{b", "contains a brace"),
        ("a\nb", "control or format character"),
    ):
        with pytest.raises(InvalidIdentifierError, match=problem):
            queries.key_for(uid=bad, tab="x")
    with pytest.raises(InvalidIdentifierError, match="over the maximum of 200"):
        queries(uid="x" * 200, tab="x")
    notes = persisted_family("{uid}.notes", type=str, default="")
    with pytest.raises(InvalidIdentifierError, match="leading or trailing whitespace"):
        notes(uid=" x")


@pytest.mark.parametrize(
    ("template", "problem", "fix"),
    [
        ("user:query", "has no {fields}", "use @persisted(key=...) for a fixed key"),
        ("user:{}", "is not a name", "{name}"),
        ("user:{0}", "is not a name", "{name}"),
        ("user:{uid!r}", "has a conversion or format spec", "{name}"),
        ("user:{uid:>3}", "has a conversion or format spec", "{name}"),
        ("user:{uid}:{uid}", "appears twice", "once"),
        ("user:{{uid}}", "escaped brace", "{name}"),
        ("user:{uid", "malformed", "{name}"),
        ("", "the key template is empty", "user:{uid}:query"),
        ("user:{uid}\t", "leading or trailing whitespace", "user:{uid}:query"),
    ],
)
def test_bad_templates_are_refused(template: str, problem: str, fix: str) -> None:
    line = _next_line()
    error = _refusal(SpecError, line, lambda: persisted_family(template, type=str, default=""))
    assert problem in error.problem and fix in error.fix


def test_family_default_must_match_its_type() -> None:
    line = _next_line()
    error = _refusal(SpecError, line, lambda: persisted_family("u:{uid}", type=int, default="0"))
    assert "expected int, got str" in error.problem


def test_fixed_keys_and_families_may_not_overlap() -> None:
    persisted_family("user:{uid}:query", type=str, default="")
    line = _next_line()
    error = _refusal(DuplicateKeyError, line, lambda: persisted(key="user:admin:query")(_zero))
    assert "also a key of the family 'user:{uid}:query'" in error.problem

    @persisted(key="report:daily")
    def daily() -> int:
        return 0

    line = _next_line() + 1

    def declare() -> Any:
        return persisted_family("report:{period}", type=int, default=0)

    error = _refusal(DuplicateKeyError, line, declare)
    assert "can produce the key 'report:daily'" in error.problem


def test_the_most_specific_family_owns_a_key() -> None:
    general = persisted_family("user:{uid}:{tab}", type=str, default="")
    specific = persisted_family("user:{uid}:query", type=str, default="")
    assert registry.resolve("user:1:query") is specific.spec
    assert registry.resolve("user:1:cart") is general.spec
    with pytest.raises(InvalidIdentifierError, match=re.escape("belongs to 'user:{uid}:query'")):
        general.key_for(uid=1, tab="query")


def _zero() -> int:
    return 0


# --------------------------------------------------------------------------- the registry


def test_registry_lists_gets_and_isolates() -> None:
    @persisted(key="b.key")
    def b() -> int:
        return 0

    @persisted(key="a.key")
    def a() -> int:
        return 0

    persisted_family("c:{id}", type=int, default=0)
    assert [spec.key for spec in registry.specs()] == ["a.key", "b.key", "c:{id}"]
    assert len(registry) == 3
    assert "a.key" in registry and "c:{id}" in registry and "c:1" not in registry
    assert registry.get("missing") is None and registry.resolve("missing") is None
    with registry.isolated():
        assert len(registry) == 0 and registry.get("a.key") is None
    assert len(registry) == 3 and registry.get("a.key") is not None


def test_concurrent_declarations_all_register() -> None:
    errors: list[BaseException] = []

    def declare(n: int) -> None:
        try:
            persisted_family(f"t{n}:{{id}}", type=int, default=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=declare, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(registry) == 16


def test_key_problem_accepts_good_keys() -> None:
    assert key_problem("shop.page") is None
    assert key_problem("ünïcode·key 🙂") is None
    assert key_problem("k" * 200) is None


# --------------------------------------------------------------------------- resolving stored names

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Families side by side, including ones whose keys look alike or whose fields touch.
TEMPLATES = [
    "user:{uid}:query",
    "user:{uid}:{tab}",
    "a:{x}",
    "a:{x}:{y}",
    "a:{x}:{y}:z",
    "{x}:b",
    "{x}.{y}.z",
    "p{x}q{y}r{z}",
    "{x}{y}",
]


def _declare_templates() -> list[Family[int]]:
    return [persisted_family(template, type=int, default=0) for template in TEMPLATES]


def _old_resolve(key: str) -> str | None:
    """What resolve answered before: a full match of each template's regex, most specific first."""
    order = sorted(TEMPLATES, key=lambda t: (-sum(len(lit) for lit, *_ in string.Formatter().parse(t)), t))
    for template in order:
        regex = "".join(
            re.escape(literal) + ("" if field is None else f"(?P<{field}>[^{{}}]+)")
            for literal, field, _, _ in string.Formatter().parse(template)
        )
        if re.fullmatch(regex, key, re.DOTALL):
            return template
    return None


# Parameter text leaning on the templates' own literals, so ambiguous splits come up often.
_PARAMETER = st.text(
    st.sampled_from(":.abqrpz/é ") | st.characters(exclude_categories=("C",), exclude_characters="{}"),
    min_size=1,
    max_size=12,
)


@PROPERTY
@given(st.data())
def test_every_family_key_resolves_as_the_full_match_did(data: st.DataObject) -> None:
    with registry.isolated():
        families = _declare_templates()
        family = data.draw(st.sampled_from(families))
        params = {field: data.draw(_PARAMETER, label=field) for field in family.fields}
        key = family.spec.key.format(**params)
        assume(key_problem(key) is None)
        owner = registry.resolve(key)
        assert owner is not None and owner.key == _old_resolve(key)
        # The leftmost split of the owner gives back the key (it may differ from params if ambiguous).
        template = next(t for t in registry._template_order if t.spec is owner)
        values = template.split(key)
        assert values is not None
        assert owner.key.format(**dict(zip(_fields(owner.key), values, strict=True))) == key


def _fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


@PROPERTY
@given(st.text(st.sampled_from(":.abqrpz/ {}é\n\x00\u200b"), max_size=24))
def test_any_name_resolves_as_the_full_match_did_or_not_at_all(name: str) -> None:
    with registry.isolated():
        _declare_templates()
        owner = registry.resolve(name)
        if _could_be_key(name):
            assert (owner.key if owner else None) == _old_resolve(name)
        else:
            assert owner is None
        for template in registry._template_order:
            assert template.matches(name) == (template.split(name) is not None)


def test_validation_is_exactly_the_rules_keys_are_made_with() -> None:
    for name in ("shop.page", "user:5:query", "ünïcode·key 🙂", "a b", "k" * MAX_KEY_LENGTH, "a\u00a0b"):
        assert _could_be_key(name) and key_problem(name) is None
    for name in (
        "",
        "k" * (MAX_KEY_LENGTH + 1),
        " a",
        "a ",
        "a\u00a0",
        "a\nb",
        "a\u200bb",
        "a{b",
        "a}b",
        "\udcff",
    ):
        assert not _could_be_key(name)
        assert key_problem(name) is not None or "{" in name or "}" in name


def test_ambiguous_keys_split_at_the_leftmost_literal() -> None:
    families = dict(zip(TEMPLATES, _declare_templates(), strict=True))
    template = {t.spec.key: t for t in registry._template_order}
    assert template["a:{x}:{y}"].split("a:1:2:3") == ("1", "2:3")
    assert template["{x}{y}"].split("abc") == ("a", "bc")
    assert template["p{x}q{y}r{z}"].split("pqqrqrr") == ("q", "rq", "r")
    assert template["{x}:b"].split("x:b:b") == ("x:b",)
    assert template["a:{x}:{y}"].split("a::") is None  # each field takes a character
    # Templates whose fields touch keep working end to end.
    touching = families["{x}{y}"]
    assert touching.key_for(x="1", y="23") == "123"
    assert registry.resolve("123") is touching.spec


class _CountingStr(str):
    """A key that records each str method the matcher calls on it."""

    calls: list[tuple[str, int]]

    def find(self, sub: str, start: Any = None, end: Any = None) -> int:
        self.calls.append(("find", start))
        return super().find(sub, start, end)

    def startswith(self, prefix: Any, *args: Any) -> bool:
        self.calls.append(("startswith", 0))
        return super().startswith(prefix, *args)

    def endswith(self, suffix: Any, *args: Any) -> bool:
        self.calls.append(("endswith", 0))
        return super().endswith(suffix, *args)


def test_family_matching_is_a_forward_scan_without_regex() -> None:
    _declare_templates()
    assert re not in vars(spec_module).values()
    for template in registry._template_order:
        assert not any(isinstance(getattr(template, f.name), re.Pattern) for f in attrs.fields(_Template))
        for body in (":" * 190, "q" * 95 + "r" * 95, "a:" * 95, "x" * 198):
            for method in (template.matches, template.split):
                key = _CountingStr(template.head + body + template.tail)
                key.calls = []
                method(key)
                # One startswith, one endswith, one find per middle literal: never more, whatever the key.
                assert len(key.calls) <= 2 + len(template.middles)
                starts = [start for name, start in key.calls if name == "find"]
                assert starts == sorted(set(starts))  # each search starts past the previous: no backtracking


@pytest.mark.parametrize("size", [12 * 1024, 1024 * 1024])
def test_huge_adversarial_names_fail_validation_before_any_family_is_tried(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _declare_templates()

    def never(self: _Template, key: str) -> Any:
        raise AssertionError("a family was tried")

    monkeypatch.setattr(_Template, "matches", never)
    monkeypatch.setattr(_Template, "split", never)
    for name in ("a:" + ":" * size, "p" + "q" * size + "r", "user:" + "a:" * (size // 2) + "query"):
        assert not _could_be_key(name)
        assert registry.resolve(name) is None


@pytest.mark.parametrize(
    "name",
    [
        None,
        5,
        5.0,
        b"user:1:query",
        bytearray(b"user:1:query"),
        ["user:1:query"],
        {"user:1:query": 1},
        object(),
        b"user:\xff:query".decode("utf-8", "surrogateescape"),
        "user:\ud800:query",
        "user:\n:query",
        "user:1:query\u200b",
        " user:1:query",
        "user:{1}:query",
        "",
    ],
)
def test_resolve_never_raises_on_a_name_no_declaration_could_make(name: Any) -> None:
    queries = persisted_family("user:{uid}:query", type=str, default="")

    @persisted(key="user")
    def user() -> int:
        return 0

    assert registry.resolve(name) is None
    assert registry.resolve("user:1:query") is queries.spec
    assert registry.resolve(type("Name", (str,), {})("user:1:query")) is queries.spec
    assert registry.resolve(type("Name", (str,), {})("user")) is registry.get("user")
