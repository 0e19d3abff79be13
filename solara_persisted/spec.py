"""The declaration DSL: which reactive values persist, under which key, shape, version and budget.

``@persisted(key="shop.page")`` over ``def page() -> int: return 0`` turns the default factory
into a Solara reactive and records a ``PersistedSpec`` in the ``registry``; per-instance keys
(the store pattern) use ``persisted_family("user:{uid}:query", type=..., default=...)``.
Everything that could only fail later, on some user's restore, is refused here at import time
with the definition site and the fix: bad keys, duplicate keys, unrepresentable types, defaults
that do not match their own type.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import string
import sys
import threading
import typing
import unicodedata
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Generic, Literal, TypeGuard, TypeVar

import attrs
import solara
import solara.toestand

from .codec import PickleTypeCodec, TypeCodec, compile_type, type_name
from .codec.untyped import UntypedCodec, untyped_codec
from .config import Settings
from .envelope import Codec
from .errors import DuplicateKeyError, EncodeError, InvalidIdentifierError, SpecError

__all__ = [
    "MAX_KEY_LENGTH",
    "SCOPES",
    "STORAGE_PREFIX",
    "Family",
    "PersistConfig",
    "PersistedSpec",
    "Registry",
    "key_from_storage_key",
    "key_problem",
    "persist_true_spec",
    "persisted",
    "persisted_family",
    "registry",
]

T = TypeVar("T")
CodecName = Literal["json", "pickle"]
#: How long a value lives: "kernel" (one page: a reload or a new tab starts from the default) or
#: "session" (the browser session: every tab and reload of one cookie restores the latest change).
Scope = Literal["kernel", "session"]
SCOPES: tuple[Scope, ...] = ("kernel", "session")

#: Prefix of the Solara storage key of every persisted reactive; the rest is the persisted key.
STORAGE_PREFIX = "solara_persisted:"
MAX_KEY_LENGTH = 200
_CODECS: dict[str, Codec] = {"json": Codec.JSON, "pickle": Codec.PICKLE}


def key_from_storage_key(storage_key: str) -> str | None:
    """The persisted key behind a reactive's storage key, or None for a reactive we do not own."""
    if isinstance(storage_key, str) and storage_key.startswith(STORAGE_PREFIX):
        return storage_key[len(STORAGE_PREFIX) :]
    return None


def key_problem(key: object, what: str = "key") -> str | None:
    """Why ``key`` cannot be a persisted key (it becomes a hash field in the backend), or None."""
    if not isinstance(key, str):
        return f"the {what} must be a str, got {type(key).__qualname__}"
    if not key:
        return f"the {what} is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the {what} is {len(key)} characters long, over the maximum of {MAX_KEY_LENGTH}"
    if key != key.strip():
        return f"the {what} {key!r} has leading or trailing whitespace"
    if _has_control(key):
        char = next(c for c in key if unicodedata.category(c).startswith("C"))
        return f"the {what} {key!r} contains the control or format character {char!r}"
    return None


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a control, format, surrogate or unassigned character (Unicode category C)."""
    # str.isprintable() is False for every category C character (and some separators): C speed
    # for the usual printable key, the per-character lookup only for the rest.
    return not text.isprintable() and any(unicodedata.category(char).startswith("C") for char in text)


def _could_be_key(name: object) -> TypeGuard[str]:
    """Whether ``name`` passes the rules every concrete key passed when it was made.

    A fixed key passed ``key_problem`` and has no braces; a family's key passed ``key_problem``
    and is built from brace-free literals and parameters (``_parameter_problem``). So anything
    else (not a str, too long, surrounding whitespace, a control character or lone surrogate from
    undecodable bytes, a brace) can be no declared key, and ``Registry.resolve`` stops here, after
    at most MAX_KEY_LENGTH characters of work.
    """
    if type(name) is not str or not 0 < len(name) <= MAX_KEY_LENGTH or "{" in name or "}" in name:
        return False
    if name.isprintable():  # so no category C character, and no whitespace but the ASCII space
        return name[0] != " " and name[-1] != " "
    return not name[0].isspace() and not name[-1].isspace() and not _has_control(name)


@attrs.frozen(eq=False)
class PersistedSpec:
    """One declaration: everything the engine, codegen and restore need to know about a key.

    ``key`` is the declared key, or the template for a family (``is_template``). ``default`` is
    a zero-argument factory. ``site`` ("path/to/app.py:12") is where it was declared. ``untyped``:
    declared with Solara's own ``persist=True`` / ``PersistConfig`` rather than ``@persisted``, so
    there is no annotation (the codec follows the default) and no version to evolve.
    ``scope``: "kernel" (one page's state) or "session" (shared by a browser session's tabs).
    """

    key: str
    type: Any
    version: int
    warn_bytes: int | None
    max_bytes: int | None
    codec_name: CodecName
    default: Callable[[], Any]
    site: str
    type_codec: TypeCodec | PickleTypeCodec | UntypedCodec
    is_template: bool
    reactive: solara.Reactive[Any] | None = attrs.field(default=None, repr=False)
    #: Migration steps by the version they start from, declared with ``migrations.migration``
    #: after the spec; kept on the spec so a re-run declaration starts with none.
    steps: dict[int, Any] = attrs.field(factory=dict, repr=False)
    untyped: bool = False
    scope: Scope = "kernel"

    @property
    def codec_id(self) -> Codec:
        """The envelope codec byte for this spec's payloads."""
        return _CODECS[self.codec_name]


@attrs.frozen(eq=False)
class _Origin:
    """Where a declaration ran, to tell a re-run of the same definition from a real duplicate."""

    filename: str
    lineno: int
    qualname: str | None
    namespace: dict[str, Any]

    def redefines(self, other: _Origin) -> bool:
        """Same line of the same file, or a function of the same name in the same module namespace
        (an edited and re-run Jupyter cell, an edited module re-imported in place)."""
        if self.filename == other.filename and self.lineno == other.lineno:
            return True
        return (
            self.namespace is other.namespace
            and self.qualname is not None
            and self.qualname == other.qualname
        )


@attrs.frozen(eq=False)
class _Template:
    """A family's template as its literal text: ``head{a}middle{b}tail`` is ``("head", ("middle",), "tail")``.

    ``matches`` and ``split`` take a key left to right with ``str`` methods, never a regex: each
    field takes at least one character, and each middle literal is found by one ``str.find`` from
    just past the previous one. The scan never moves back, so a key costs at most
    ``2 + len(middles)`` C-level scans, each over part of a key already cut to MAX_KEY_LENGTH.

    Ambiguous keys (``a:{x}:{y}`` and ``a:1:2:3``, ``{x}{y}`` and ``abc``) split at the leftmost
    occurrence of each literal, so every field but the last takes the shortest value and the last
    takes the rest: ``("1", "2:3")``, ``("a", "bc")``. Since a field may hold any brace-free text,
    a key has some split exactly when it has the leftmost one, so the rule never changes which
    family owns a key: a template matches exactly the keys a full match of it would.
    """

    spec: PersistedSpec
    head: str
    middles: tuple[str, ...]
    tail: str
    literal_length: int
    #: The shortest key: the literals and one character per field.
    min_length: int = attrs.field(
        default=attrs.Factory(lambda self: self.literal_length + len(self.middles) + 1, takes_self=True)
    )

    def matches(self, key: str) -> bool:
        """Whether ``key`` is one of this family's keys (``split`` without collecting the values)."""
        if len(key) < self.min_length or not key.startswith(self.head) or not key.endswith(self.tail):
            return False
        if not self.middles:
            return True  # one field, and min_length leaves it at least one character
        start, end = len(self.head), len(key) - len(self.tail)
        for literal in self.middles:
            at = key.find(literal, start + 1, end)  # the field before it takes one character or more
            if at < 0:
                return False
            start = at + len(literal)
        return start < end

    def split(self, key: str) -> tuple[str, ...] | None:
        """The field values of ``key`` under the leftmost rule, or None if it is not one of this family's keys."""
        if len(key) < self.min_length or not key.startswith(self.head) or not key.endswith(self.tail):
            return None
        start, end = len(self.head), len(key) - len(self.tail)
        values = []
        for literal in self.middles:
            at = key.find(literal, start + 1, end)
            if at < 0:
                return None
            values.append(key[start:at])
            start = at + len(literal)
        if start >= end:
            return None
        values.append(key[start:end])
        return tuple(values)


class Registry:
    """Every declared spec by key; thread-safe, and re-running a declaration replaces it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._fixed: dict[str, PersistedSpec] = {}
        self._templates: dict[str, _Template] = {}
        self._origins: dict[str, _Origin] = {}
        # Immutable snapshot, most specific first, so resolve() needs no lock.
        self._template_order: tuple[_Template, ...] = ()
        #: Keys an app no longer declares, to their successor key (or None), for ``check``.
        self._retired: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self._fixed) + len(self._templates)

    def __contains__(self, key: object) -> bool:
        return key in self._fixed or key in self._templates

    def __repr__(self) -> str:
        return f"<Registry of {len(self)} persisted keys>"

    def get(self, key: str) -> PersistedSpec | None:
        """The spec declared under ``key`` (a fixed key or a family's template)."""
        spec = self._fixed.get(key)
        if spec is not None:
            return spec
        template = self._templates.get(key)
        return template.spec if template is not None else None

    def resolve(self, concrete_key: object) -> PersistedSpec | None:
        """The spec a stored key belongs to: the fixed key itself, else the most specific family.

        A stored field name is untrusted input: anything no declaration could have produced (see
        ``_could_be_key``: a non-str, over MAX_KEY_LENGTH, a control character...) is None before
        any family is tried, and families are matched by ``_Template.matches``, a forward-only
        scan, so no name costs more than a few scans of at most MAX_KEY_LENGTH characters.
        """
        if type(concrete_key) is not str:
            if not isinstance(concrete_key, str):
                return None
            concrete_key = str.__str__(concrete_key)  # a plain copy: no overridden methods run below
        if len(concrete_key) > MAX_KEY_LENGTH:
            return None
        spec = self._fixed.get(concrete_key)  # a declared fixed key passed every check when declared
        if spec is not None:
            return spec
        if not _could_be_key(concrete_key):
            return None
        for template in self._template_order:
            if template.matches(concrete_key):
                return template.spec
        return None

    def specs(self) -> list[PersistedSpec]:
        """Every spec declared with ``@persisted`` / ``persisted_family``, sorted by key (schemas, goldens
        and migrations are theirs; ``untyped()`` lists the rest)."""
        with self._lock:
            every = [*self._fixed.values(), *(t.spec for t in self._templates.values())]
        return sorted((spec for spec in every if not spec.untyped), key=lambda spec: spec.key)

    def has_session_scope(self) -> bool:
        """Whether any declaration is ``scope="session"`` (only then does a restore read the shared hash)."""
        with self._lock:
            every = [*self._fixed.values(), *(t.spec for t in self._templates.values())]
        return any(spec.scope == "session" for spec in every)

    def untyped(self) -> list[PersistedSpec]:
        """The specs of reactives declared with Solara's own ``persist=True``, sorted by key."""
        with self._lock:
            every = [spec for spec in self._fixed.values() if spec.untyped]
        return sorted(every, key=lambda spec: spec.key)

    def retire(self, key: str, successor: str | None) -> None:
        """Record that ``key`` was deliberately dropped (or renamed to ``successor``)."""
        with self._lock:
            self._retired[key] = successor

    def retired(self) -> dict[str, str | None]:
        """Every retired key and its successor (None: dropped without one)."""
        with self._lock:
            return dict(self._retired)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[Registry]:
        """An empty registry for the duration of the block (for tests); the previous content is restored."""
        with self._lock:
            saved = (self._fixed, self._templates, self._origins, self._template_order, self._retired)
            self._fixed, self._templates, self._origins, self._template_order = {}, {}, {}, ()
            self._retired = {}
        try:
            yield self
        finally:
            with self._lock:
                self._fixed, self._templates, self._origins, self._template_order, self._retired = saved

    def _register(self, spec: PersistedSpec, origin: _Origin, template: _Template | None) -> None:
        with self._lock:
            self._forget_previous_executions(origin)
            key = spec.key
            existing = self.get(key)
            if existing is not None and existing.untyped:
                raise _declared_both_ways(spec, existing, spec)
            if existing is not None and not origin.redefines(self._origins[key]):
                raise DuplicateKeyError(
                    spec.site,
                    f"the persisted key {key!r} is already declared at {existing.site}",
                    "give each declaration its own key; keys must be unique across the whole app",
                )
            self._check_overlap(spec, template)
            self._drop(key)
            if template is None:
                self._fixed[key] = spec
            else:
                self._templates[key] = template
            self._origins[key] = origin
            self._reorder()

    def adopt(self, spec: PersistedSpec, origin: _Origin) -> None:
        """Register the spec of a ``persist=True`` reactive (``persist_true_spec``).

        It replaces an earlier ``persist=True`` spec of its key, which Solara's own registration
        has already vetted (a re-run, a hot reload, a dead reactive); an ``@persisted`` spec of the
        key is a ``DuplicateKeyError`` naming both sites.
        """
        with self._lock:
            self.refuse_typed(spec)
            self._check_overlap(spec, None)
            self._drop(spec.key)
            self._fixed[spec.key] = spec
            self._origins[spec.key] = origin

    def refuse_typed(self, spec: PersistedSpec) -> None:
        """``DuplicateKeyError`` if ``@persisted`` declared the key of this ``persist=True`` spec already."""
        existing = self.get(spec.key)
        if existing is not None and not existing.untyped:
            raise _declared_both_ways(existing, spec, spec)

    def _forget_previous_executions(self, origin: _Origin) -> None:
        """A module re-executed in a fresh namespace (Solara's hot reload) replaces all it declared.

        Not its ``persist=True`` specs: Solara registers those again as the module runs, and
        ``adopt`` replaces each one then.
        """
        stale = [
            key
            for key, known in self._origins.items()
            if known.filename == origin.filename
            and known.namespace is not origin.namespace
            and known.namespace is not _NO_NAMESPACE
        ]
        for key in stale:
            self._drop(key)

    def _check_overlap(self, spec: PersistedSpec, template: _Template | None) -> None:
        """A fixed key that some family could also produce would make two reactives share a field."""
        if template is None:
            for other in self._templates.values():
                if other.matches(spec.key) and other.spec.key != spec.key:
                    raise DuplicateKeyError(
                        spec.site,
                        f"the persisted key {spec.key!r} is also a key of the family {other.spec.key!r} "
                        f"declared at {other.spec.site}",
                        "rename the fixed key, or change the family's template so it cannot produce it",
                    )
            return
        for key, fixed in self._fixed.items():
            if template.matches(key):
                raise DuplicateKeyError(
                    spec.site,
                    f"the family {spec.key!r} can produce the key {key!r}, already declared at {fixed.site}",
                    "rename the fixed key, or change the family's template so it cannot produce it",
                )

    def _drop(self, key: str) -> None:
        self._fixed.pop(key, None)
        self._templates.pop(key, None)
        self._origins.pop(key, None)
        self._reorder()

    def _reorder(self) -> None:
        self._template_order = tuple(
            sorted(self._templates.values(), key=lambda t: (-t.literal_length, t.spec.key))
        )


def _declared_both_ways(
    typed: PersistedSpec, untyped: PersistedSpec, refused: PersistedSpec
) -> DuplicateKeyError:
    return DuplicateKeyError(
        refused.site,
        f"the persisted key {typed.key!r} is declared twice: with @persisted at {typed.site} and with "
        f"Solara's persist=True at {untyped.site}",
        "keep one declaration (the @persisted one is typed: drop persist= and key= from the solara.reactive), "
        "or give one of them another key",
    )


registry = Registry()
#: The namespace of every ``persist=True`` origin: Solara, not a module's re-execution, replaces those.
_NO_NAMESPACE: dict[str, Any] = {}


class Family(Generic[T]):
    """Per-instance persisted reactives from one key template: ``queries(uid=5)``.

    One reactive per concrete key is kept while anything references it; a later call for the
    same key returns the same reactive (and a fresh one after it was dropped reads the same
    per-kernel value, since Solara keeps values by storage key).
    """

    def __init__(self, spec: PersistedSpec, fields: tuple[str, ...]) -> None:
        self.spec = spec
        self.fields = fields
        self._reactives: weakref.WeakValueDictionary[str, solara.Reactive[T]] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Family {self.spec.key!r} declared at {self.spec.site}>"

    def key_for(self, **params: object) -> str:
        """The concrete persisted key for these template parameters."""
        concrete = self._concrete(params)
        self._check_owner(concrete)
        return concrete

    def __call__(self, **params: object) -> solara.Reactive[T]:
        """The Solara reactive persisted under the concrete key for these parameters."""
        concrete = self._concrete(params)
        with self._lock:
            reactive = self._reactives.get(concrete)
            if reactive is None:
                self._check_owner(concrete)
                reactive = _new_reactive(self.spec.default, concrete)
                self._reactives[concrete] = reactive
        return reactive

    def _check_owner(self, concrete: str) -> None:
        """A restore finds a key's spec by ``registry.resolve``: it must find this family's."""
        owner = registry.resolve(concrete)
        if owner is not None and owner is not self.spec:
            raise InvalidIdentifierError(
                problem=f"the family {self.spec.key!r} gives the key {concrete!r}, which belongs to "
                f"{owner.key!r} declared at {owner.site}",
                fix="make the templates or keys distinct",
            )

    def _concrete(self, params: dict[str, object]) -> str:
        missing = [f for f in self.fields if f not in params]
        extra = sorted(set(params) - set(self.fields))
        if missing or extra:
            details = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(extra)}" if extra else "",
                )
                if part
            )
            raise SpecError(
                site_of(_caller()),
                f"the family {self.spec.key!r} takes exactly the parameters {', '.join(self.fields)} ({details})",
                f"call it as family({', '.join(f + '=...' for f in self.fields)})",
            )
        values = {}
        for name in self.fields:
            text = str(params[name])
            problem = _parameter_problem(text)
            if problem:
                raise InvalidIdentifierError(
                    problem=f"parameter {name}={text!r} of the family {self.spec.key!r} {problem}",
                    fix="pass a non-empty value without braces or control characters (e.g. an id)",
                )
            values[name] = text
        concrete = self.spec.key.format(**values)
        problem = key_problem(concrete, "resulting key")
        if problem:
            raise InvalidIdentifierError(
                problem=problem, fix="use shorter parameter values without surrounding spaces"
            )
        return concrete


def _parameter_problem(text: str) -> str | None:
    if not text:
        return "is empty"
    if "{" in text or "}" in text:
        return "contains a brace"
    if _has_control(text):
        return "contains a control or format character"
    return None


# --------------------------------------------------------------------------- declarations


def _caller() -> tuple[str, int, dict[str, Any]]:
    """File, line and module namespace of the first frame outside this module."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals


def site_of(where: tuple[str, int, dict[str, Any]]) -> str:
    filename, lineno, _ = where
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        relative = filename
    return f"{filename if relative.startswith('..') else relative}:{lineno}"


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_scope(site: str, scope: object) -> None:
    if scope not in SCOPES:
        raise SpecError(
            site,
            f"scope must be 'kernel' or 'session', got {scope!r}",
            'use scope="session" for a value every tab and reload of the browser session shares, '
            "or leave it out for one page's state",
        )


def _check_options(
    site: str, version: object, warn_bytes: object, max_bytes: object, codec: object, scope: object = "kernel"
) -> None:
    _check_scope(site, scope)
    if not _is_positive_int(version):
        raise SpecError(
            site,
            f"version must be an int >= 1, got {version!r}",
            "write version=1 and bump it on each change",
        )
    for name, budget in (("warn_bytes", warn_bytes), ("max_bytes", max_bytes)):
        if budget is not None and not _is_positive_int(budget):
            raise SpecError(
                site,
                f"{name} must be a positive int (bytes) or None, got {budget!r}",
                f"write e.g. {name}=100_000, or leave it out to use the global SOLARA_STATE_* cap",
            )
    if isinstance(warn_bytes, int) and isinstance(max_bytes, int) and warn_bytes > max_bytes:
        raise SpecError(
            site,
            f"warn_bytes={warn_bytes} is above max_bytes={max_bytes}",
            "make warn_bytes the smaller one: it warns before max_bytes drops the value",
        )
    if codec not in _CODECS:
        raise SpecError(
            site, f"codec must be 'json' or 'pickle', got {codec!r}", 'use codec="json" (the default)'
        )


def _type_codec(tp: Any, key: str, codec: CodecName, site: str) -> TypeCodec | PickleTypeCodec:
    if codec == "json":
        return compile_type(tp, key=key, site=site)
    _check_pickle_allowed(key, site, "codec")
    return PickleTypeCodec(key, tp)


def _check_pickle_allowed(key: str, site: str, option: str) -> None:
    if not Settings.from_env().allow_pickle:
        raise SpecError(
            site,
            f'{key!r} uses {option}="pickle", which the deployment has not allowed: unpickling runs code',
            f'use the default {option}="json", or have the deployer set SOLARA_STATE_ALLOW_PICKLE=true '
            "(with real SOLARA_STATE_SECRET_KEYS)",
        )


def _check_default(
    factory: Callable[[], Any], type_codec: TypeCodec | PickleTypeCodec, tp: Any, site: str
) -> None:
    try:
        value = factory()
    except Exception as exc:
        raise SpecError(
            site,
            f"calling the default factory failed: {type(exc).__name__}: {exc}",
            "make the default a zero-argument callable (or a plain value) that returns the declared type",
        ) from exc
    try:
        type_codec.dumps(value)
    except EncodeError as exc:
        where = f" at {exc.path}" if exc.path else ""
        raise SpecError(
            site,
            f"the default does not match its own type {type_name(tp)}{where}: {exc.problem}",
            "return a value of the declared type from the default, or correct the annotation",
        ) from None


@dataclasses.dataclass
class PersistConfig(solara.PersistConfig):
    """Solara's ``PersistConfig`` plus a ``scope``, for ``solara.reactive(..., persist=PersistConfig(...))``.

    A subclass, so Solara accepts it wherever it takes its own; ``scope="session"`` shares the
    value across the browser session's tabs and reloads as ``@persisted(scope="session")`` does.
    """

    scope: Scope = "kernel"


def _new_reactive(factory: Callable[[], T], key: str) -> solara.Reactive[T]:
    # One fresh default per kernel, stored by Solara under a storage key we can map back.
    return solara.Reactive(solara.toestand.KernelStoreFactory(factory, key=STORAGE_PREFIX + key))


def persist_true_spec(
    key: str, default: Any, serializer: object, filename: str, lineno: int, scope: object = "kernel"
) -> tuple[PersistedSpec, _Origin]:
    """The spec of a reactive declared with Solara's own API (``persist=True`` / ``PersistConfig``) at
    ``filename:lineno``, for ``Registry.adopt``.

    It has no annotation, so its JSON codec follows its default (``codec.untyped``); version 1
    and the global budgets. ``serializer="pickle"`` passes the same gate as ``codec="pickle"``.
    """
    site = site_of((filename, lineno, _NO_NAMESPACE))
    problem = key_problem(key)
    if problem:
        raise SpecError(site, f"persist=True: {problem}", "give the reactive a short, printable key=...")
    _check_scope(site, scope)
    if serializer not in _CODECS:
        raise SpecError(
            site,
            f"{key!r} uses PersistConfig(serializer={serializer!r}); solara-persisted stores json or pickle",
            'use serializer="json" (the default)',
        )
    type_codec: UntypedCodec | PickleTypeCodec
    codec: CodecName
    if serializer == "json":
        codec, type_codec = "json", untyped_codec(key, default)
    else:
        _check_pickle_allowed(key, site, "serializer")
        codec, type_codec = "pickle", PickleTypeCodec(key, type(default))
    spec = PersistedSpec(
        key, type(default), 1, None, None, codec, lambda: default, site, type_codec, False, untyped=True, scope=scope
    )
    return spec, _Origin(filename, lineno, None, _NO_NAMESPACE)


def persisted(
    *,
    key: str,
    version: int = 1,
    warn_bytes: int | None = None,
    max_bytes: int | None = None,
    codec: CodecName = "json",
    scope: Scope = "kernel",
) -> Callable[[Callable[[], T]], solara.Reactive[T]]:
    """Decorate a default factory to make it a persisted Solara reactive.

    The return annotation is the persisted type; the factory gives each kernel its default.
    ``scope="session"`` shares the value across the browser session's tabs and reloads.
    """
    where = _caller()
    site = site_of(where)
    problem = key_problem(key)
    if problem:
        raise SpecError(site, problem, "use a short, stable, printable key such as 'shop.page'")
    if "{" in key or "}" in key:
        raise SpecError(
            site,
            f"the key {key!r} contains braces",
            'use persisted_family("user:{uid}:query", type=..., default=...) for per-instance keys',
        )
    _check_options(site, version, warn_bytes, max_bytes, codec, scope)

    def decorate(factory: Callable[[], T]) -> solara.Reactive[T]:
        if not callable(factory):
            raise SpecError(
                site,
                f"@persisted decorates a default factory, got {factory!r}",
                "put it over def page() -> int: ...",
            )
        try:
            hints = typing.get_type_hints(factory)
        except Exception as exc:
            raise SpecError(
                site,
                f"the annotations of {getattr(factory, '__qualname__', factory)!r} cannot be resolved ({exc})",
                "define or import every type the annotation names at module level",
            ) from None
        if "return" not in hints:
            raise SpecError(
                site,
                f"the default factory {getattr(factory, '__qualname__', factory)!r} has no return annotation",
                "annotate it with the persisted type: def page() -> int: return 0",
            )
        tp = hints["return"]
        type_codec = _type_codec(tp, key, codec, site)
        _check_default(factory, type_codec, tp, site)
        reactive = _new_reactive(factory, key)
        spec = PersistedSpec(
            key, tp, version, warn_bytes, max_bytes, codec, factory, site, type_codec, False, reactive, scope=scope
        )
        origin = _Origin(where[0], where[1], getattr(factory, "__qualname__", None), where[2])
        registry._register(spec, origin, None)
        return reactive

    return decorate


def persisted_family(
    key: str,
    *,
    type: Any,
    default: Callable[[], T] | T,
    version: int = 1,
    warn_bytes: int | None = None,
    max_bytes: int | None = None,
    codec: CodecName = "json",
    scope: Scope = "kernel",
) -> Family[T]:
    """Declare persisted reactives keyed per instance: ``persisted_family("user:{uid}:query", ...)``.

    ``default`` is a zero-argument factory or a value (copied for each kernel); ``scope`` as for
    ``persisted``.
    """
    where = _caller()
    site = site_of(where)
    problem = key_problem(key, "key template")
    if problem:
        raise SpecError(site, problem, "use a short, printable template such as 'user:{uid}:query'")
    fields, literals = _parse_template(key, site)
    _check_options(site, version, warn_bytes, max_bytes, codec, scope)
    factory: Callable[[], Any] = default if callable(default) else (lambda: copy.deepcopy(default))
    type_codec = _type_codec(type, key, codec, site)
    _check_default(factory, type_codec, type, site)
    spec = PersistedSpec(
        key, type, version, warn_bytes, max_bytes, codec, factory, site, type_codec, True, scope=scope
    )
    template = _Template(spec, literals[0], literals[1:-1], literals[-1], sum(map(len, literals)))
    registry._register(spec, _Origin(where[0], where[1], None, where[2]), template)
    return Family(spec, fields)


def _parse_template(template: str, site: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The template's field names, and the literal text around them (one more than the fields)."""
    fix = "write fields as {name}, e.g. 'user:{uid}:query'"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SpecError(site, f"the key template {template!r} is malformed ({exc})", fix) from None
    fields: list[str] = []
    literals: list[str] = [""]
    for literal, field, format_spec, conversion in parsed:
        if "{" in literal or "}" in literal:
            raise SpecError(
                site, f"the key template {template!r} contains an escaped brace; keys cannot hold braces", fix
            )
        literals[-1] += literal
        if field is None:
            continue
        if not field.isidentifier():
            raise SpecError(site, f"the field {{{field}}} in {template!r} is not a name", fix)
        if format_spec or conversion:
            raise SpecError(
                site, f"the field {{{field}}} in {template!r} has a conversion or format spec", fix
            )
        if field in fields:
            raise SpecError(
                site, f"the field {{{field}}} appears twice in {template!r}", "use each field once"
            )
        fields.append(field)
        literals.append("")
    if not fields:
        raise SpecError(
            site,
            f"the key template {template!r} has no {{fields}}",
            "use @persisted(key=...) for a fixed key",
        )
    return tuple(fields), tuple(literals)
