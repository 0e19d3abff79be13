"""Migrations between spec versions, declared next to the spec and run on restore.

A restore that meets a value stored at an older version decodes its JSON, runs one step per
version up to the declared one, and structures the result strictly through the declared type,
which refuses exactly what the declared version's JSON Schema refuses; any failure is a bail-out
naming the key, the stored version and the failing path. Steps work on the stored JSON form
(dicts, lists, scalars), never on classes, because the old version's classes no longer exist::

    @persisted(key="shop.cart", version=3)
    def cart() -> Cart: ...

    migration(cart, from_version=1, ops=[Rename("product_ids", "skus")])

    @migration(cart, from_version=2)      # the function form, for what no operation says
    def _(data: dict) -> dict: ...

Declarative operations are preferred: ``check`` can run them against the committed schemas, and
when every step is reversible an instance of the previous release can read state a newer one
wrote (a rolling deploy), by running them backwards. A step from the current version (declared
one release ahead of the bump) exists only for that purpose and must be reversible.
"""

from __future__ import annotations

import abc
import copy
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import attrs
import orjson
import solara

from .errors import CodecError, MigrationError, SpecError
from .spec import Family, PersistedSpec, key_problem, registry, site_of

__all__ = [
    "AddField",
    "Convert",
    "Migration",
    "Operation",
    "RemoveField",
    "Rename",
    "convert",
    "json_path",
    "migration",
    "retired",
    "run_chain",
]

F = TypeVar("F", bound=Callable[[Any], Any])
Target = solara.Reactive[Any] | Family[Any] | PersistedSpec | str
_MISSING: Any = object()


class _StepFailure(Exception):
    """A step could not be applied; carries the path inside the value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def json_path(parts: Sequence[str | int]) -> str:
    """A path in the codec's spelling: ``.items[0]["odd key"]``."""
    out = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append("[" + orjson.dumps(part).decode() + "]")
    return "".join(out)


def _object(obj: Any, op: Operation) -> dict[str, Any]:
    if type(obj) is not dict:
        kind = "array" if isinstance(obj, list) else type(obj).__name__
        raise _StepFailure("", f"{op!r} needs a JSON object, got {kind}")
    return obj


class Operation(abc.ABC):
    """One declarative change to a JSON object; ``backward`` undoes it when ``reversible``."""

    reversible: bool = True

    @abc.abstractmethod
    def forward(self, obj: Any) -> dict[str, Any]:
        """Apply to a stored object of the older version (a fresh dict may be changed in place)."""

    @abc.abstractmethod
    def backward(self, obj: Any) -> dict[str, Any]:
        """Undo on an object of the newer version."""


@attrs.frozen
class Rename(Operation):
    """A property renamed from ``old`` to ``new``."""

    old: str
    new: str

    def forward(self, obj: Any) -> dict[str, Any]:
        return _move(_object(obj, self), self.old, self.new, self)

    def backward(self, obj: Any) -> dict[str, Any]:
        return _move(_object(obj, self), self.new, self.old, self)


def _move(obj: dict[str, Any], old: str, new: str, op: Operation) -> dict[str, Any]:
    if old in obj:
        if new in obj:
            raise _StepFailure(json_path([new]), f"{op!r} would overwrite the existing property {new!r}")
        obj[new] = obj.pop(old)
    return obj


@attrs.frozen
class AddField(Operation):
    """A new property, set to ``default`` (a JSON value, copied) where the stored object lacks it."""

    name: str
    default: Any

    def forward(self, obj: Any) -> dict[str, Any]:
        obj = _object(obj, self)
        if self.name not in obj:
            obj[self.name] = copy.deepcopy(self.default)
        return obj

    def backward(self, obj: Any) -> dict[str, Any]:
        _object(obj, self).pop(self.name, None)
        return obj


@attrs.frozen
class RemoveField(Operation):
    """A property dropped; reversible only with the ``default`` to put back."""

    name: str
    default: Any = _MISSING

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.default is not _MISSING

    def __repr__(self) -> str:
        if self.default is _MISSING:
            return f"RemoveField({self.name!r})"
        return f"RemoveField({self.name!r}, default={self.default!r})"

    def forward(self, obj: Any) -> dict[str, Any]:
        _object(obj, self).pop(self.name, None)
        return obj

    def backward(self, obj: Any) -> dict[str, Any]:
        if self.default is _MISSING:
            raise _StepFailure("", f"{self!r} has no default to put back")
        obj = _object(obj, self)
        obj.setdefault(self.name, copy.deepcopy(self.default))
        return obj


@attrs.frozen
class Convert(Operation):
    """A property's stored JSON value changed form: ``forward(old) -> new``, ``backward(new) -> old``."""

    name: str
    to_new: Callable[[Any], Any]
    to_old: Callable[[Any], Any] | None = None

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.to_old is not None

    def __repr__(self) -> str:
        return f"Convert({self.name!r}, {_callable_name(self.to_new)}, {_callable_name(self.to_old)})"

    def forward(self, obj: Any) -> dict[str, Any]:
        return self._apply(_object(obj, self), self.to_new)

    def backward(self, obj: Any) -> dict[str, Any]:
        if self.to_old is None:
            raise _StepFailure("", f"{self!r} has no backward function")
        return self._apply(_object(obj, self), self.to_old)

    def _apply(self, obj: dict[str, Any], function: Callable[[Any], Any]) -> dict[str, Any]:
        if self.name in obj:
            try:
                obj[self.name] = function(obj[self.name])
            except Exception as exc:
                raise _StepFailure(
                    json_path([self.name]),
                    f"{_callable_name(function)} raised {type(exc).__name__}: {exc}",
                ) from None
        return obj


def _callable_name(function: Callable[..., Any] | None) -> str:
    return getattr(function, "__qualname__", repr(function)) if function is not None else "None"


@attrs.frozen
class Migration:
    """One step, from ``from_version`` to the next: declarative ``ops`` or one ``function``."""

    from_version: int
    ops: tuple[Operation, ...] | None
    function: Callable[[Any], Any] | None
    site: str

    @property
    def to_version(self) -> int:
        return self.from_version + 1

    @property
    def reversible(self) -> bool:
        return self.ops is not None and all(op.reversible for op in self.ops)

    def describe(self) -> str:
        if self.ops is None:
            return f"{_callable_name(self.function)}()"
        return "[" + ", ".join(map(repr, self.ops)) + "]"

    def forward(self, obj: Any) -> Any:
        if self.function is not None:
            try:
                return self.function(obj)
            except Exception as exc:
                raise _StepFailure(
                    "", f"{_callable_name(self.function)} raised {type(exc).__name__}: {exc}"
                ) from None
        for op in self.ops or ():
            obj = op.forward(obj)
        return obj

    def backward(self, obj: Any) -> Any:
        for op in reversed(self.ops or ()):
            obj = op.backward(obj)
        return obj


# --------------------------------------------------------------------------- declarations


def _resolve(target: Target, site: str) -> PersistedSpec:
    if isinstance(target, PersistedSpec):
        return target
    if isinstance(target, Family):
        return target.spec
    if isinstance(target, str):
        spec = registry.get(target)
    else:
        spec = next((s for s in registry.specs() if s.reactive is target), None)
    if spec is None:
        raise SpecError(
            site,
            f"{target!r} is not a declared persisted key or reactive",
            "declare the spec (@persisted / persisted_family) before its migrations, and pass it or its key",
        )
    if spec.untyped:
        raise SpecError(
            site,
            f"{spec.key!r} is declared with Solara's persist=True, which has no type or version to migrate",
            f"declare it with @persisted(key={spec.key!r}, version=1) over an annotated default factory first",
        )
    return spec


def _declaration_site() -> str:
    """File and line of the first frame outside this module: where the app declared it."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return site_of((frame.f_code.co_filename, frame.f_lineno, frame.f_globals))


def _step(
    spec: PersistedSpec, from_version: int, ops: Sequence[Operation] | None, function: Any, site: str
) -> Migration:
    if spec.codec_name != "json":
        raise SpecError(
            site,
            f"{spec.key!r} is stored with pickle, which has no JSON form to migrate",
            'use codec="json" to get migrations, or bump SOLARA_STATE_SCHEMA_TAG to start everyone fresh',
        )
    if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
        raise SpecError(
            site, f"from_version must be an int >= 1, got {from_version!r}", "write from_version=1"
        )
    if from_version > spec.version:
        raise SpecError(
            site,
            f"a migration from version {from_version} of {spec.key!r}, declared at version {spec.version}",
            f"declare steps from 1 to {spec.version} (the last one only ahead of a bump)",
        )
    if ops is not None:
        ops = tuple(ops)
        bad = [op for op in ops if not isinstance(op, Operation)]
        if bad:
            raise SpecError(
                site,
                f"ops must be Rename/AddField/RemoveField/Convert operations, got {bad[0]!r}",
                "use the function form @migration(spec, from_version=N) for anything else",
            )
    step = Migration(from_version, ops, function, site)
    if from_version == spec.version and not step.reversible:
        raise SpecError(
            site,
            f"the step from the current version {from_version} of {spec.key!r} is not reversible; it only "
            "serves to read state a newer release wrote, by running it backwards",
            "give every operation its way back (RemoveField default=, Convert to_old=), or bump the version",
        )
    existing = spec.steps.get(from_version)
    if existing is not None and existing.site != site:
        raise SpecError(
            site,
            f"{spec.key!r} already has a migration from version {from_version}, declared at {existing.site}",
            "declare one step per version; put all its operations in one ops list",
        )
    spec.steps[from_version] = step
    return step


@overload
def migration(target: Target, *, from_version: int, ops: Sequence[Operation]) -> Migration: ...


@overload
def migration(target: Target, *, from_version: int) -> Callable[[F], F]: ...


def migration(
    target: Target, *, from_version: int, ops: Sequence[Operation] | None = None
) -> Migration | Callable[[F], F]:
    """Declare the step of ``target`` (a persisted reactive, family, spec or key) from ``from_version``.

    With ``ops`` it is declarative; without, it decorates ``def step(data) -> data`` working on
    the JSON form. Each step goes from one version to the next.
    """
    site = _declaration_site()
    spec = _resolve(target, site)
    if ops is not None:
        return _step(spec, from_version, ops, None, site)

    def decorate(function: F) -> F:
        _step(spec, from_version, None, function, site)
        return function

    return decorate


def retired(key: str, *, successor: str | None = None) -> None:
    """Declare that the app no longer uses ``key`` (renamed to ``successor``, or dropped).

    ``check`` refuses a key that has committed schemas but is neither declared nor retired, so
    removing state is always a decision. Stored values under a retired key are ignored on
    restore and expire with the session.
    """
    site = _declaration_site()
    for what, value in (("key", key), ("successor", successor)):
        problem = None if value is None and what == "successor" else key_problem(value, what)
        if problem:
            raise SpecError(site, problem, "pass the persisted key as a string")
    registry.retire(key, successor)


# --------------------------------------------------------------------------- restore


def convert(spec: PersistedSpec, key: str, version: int, payload: bytes) -> Any:
    """The value of ``payload``, stored at ``version``, migrated to and validated as the declared version.

    Raises ``MigrationError`` naming the key, the stored version and the failing path.
    """
    if spec.codec_name != "json":
        raise MigrationError(
            key, version, "", f"pickled values have no migrations (declared version {spec.version})"
        )
    try:
        obj = spec.type_codec.parse(payload)  # the checks of a restore: duplicate keys, depth
    except CodecError as error:
        raise MigrationError(key, version, error.path, error.problem) from None
    obj = run_chain(spec, key, version, obj)
    # The declared type's compiled structuring is the validator: it is generated from the same
    # type as the committed JSON Schema, refuses what the schema refuses (closed objects, no
    # coercion) and measured 50 to 190 times faster than jsonschema on the same value.
    try:
        return spec.type_codec.structure(obj)
    except CodecError as error:
        raise MigrationError(
            key, version, error.path, f"after migrating to version {spec.version}: {error.problem}"
        ) from None


def run_chain(spec: PersistedSpec, key: str, version: int, obj: Any, target: int | None = None) -> Any:
    """Run the declared steps on a JSON value from ``version`` to ``target`` (the declared version)."""
    target = spec.version if target is None else target
    upward = version <= target
    versions = range(version, target) if upward else range(version - 1, target - 1, -1)
    for v in versions:
        step = spec.steps.get(v)
        if step is None or not (upward or step.reversible):
            needed = "" if step is None else "reversible "
            raise MigrationError(
                key,
                version,
                "",
                f"no {needed}migration between versions {v} and {v + 1} is declared",
            )
        try:
            obj = step.forward(obj) if upward else step.backward(obj)
        except _StepFailure as failure:
            direction = f"{v} -> {v + 1}" if upward else f"{v + 1} -> {v} (backwards)"
            raise MigrationError(
                key,
                version,
                failure.path,
                f"migration {direction} declared at {step.site}: {failure.problem}",
            ) from None
    return obj
