"""Committed JSON Schemas per key and version, their differences, and loading the app that declares them.

``generate`` writes ``schemas/<key>/v<N>.json`` for the declared version of every spec, in
deterministic bytes so the files can be committed and reviewed; the older versions' files stay as
history, since their classes no longer exist anywhere else. ``diff`` classifies how the stored form
changed between two of them; the ``check`` gate (``check.py``) is built on both.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from . import migrations
from .codec import type_name
from .spec import PersistedSpec, Registry

__all__ = [
    "AppLoadError",
    "Change",
    "GenerateReport",
    "Problem",
    "SchemaFileError",
    "ToolingError",
    "diff",
    "display_path",
    "generate",
    "key_dirname",
    "load_apps",
    "read_committed",
    "render",
    "schema_document",
    "untyped_notes",
]

META = "x-solara-persisted"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_NOT_SHAPE = frozenset({"title", "description", "$comment", "examples", "$schema", "$id", "$defs", META})


# --------------------------------------------------------------------------- loading the app


class ToolingError(Exception):
    """Why a schema command cannot run, as one line: the problem, then the fix.

    The CLI prints it instead of a traceback: the person running ``check`` in CI needs the file,
    the line and the cause, not importlib's or json's frames.
    """

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = " ".join(problem.split())
        self.fix = fix
        super().__init__(f"{self.problem}. Fix: {fix}")


class AppLoadError(ToolingError):
    """An app module that cannot be loaded: missing, not a module, or raising while it is imported."""


class SchemaFileError(ToolingError):
    """A committed schema file that is not one ``codegen`` wrote."""


def load_apps(targets: Iterable[str], *, search_path: Path | None = None) -> list[ModuleType]:
    """Import each app module (a dotted name or a ``.py`` path) so its declarations register.

    A file is executed afresh under a private module name each time, so a second load (``check``
    after ``codegen`` in one process, a test) registers its specs again. ``search_path`` (default:
    the current directory) goes on ``sys.path`` first, as ``python -m`` does, so app packages
    import. A missing file or module, or an app whose import raises, is an ``AppLoadError``.
    """
    where = str(search_path or Path.cwd())
    if where not in sys.path:
        sys.path.insert(0, where)
    return [_load(target, where) for target in targets]


def _load(target: str, where: str) -> ModuleType:
    path = Path(target)
    if path.is_dir():
        raise AppLoadError(f"{target} is a directory", "pass the .py file that declares the specs")
    if target.endswith(".py") or path.exists() or os.sep in target or "/" in target:
        if not path.is_file():
            raise AppLoadError(
                f"{target}: no such file (looked in {Path.cwd()})",
                "pass the path of the module that declares the specs, or its dotted module name",
            )
        resolved = path.resolve()
        name = f"_solara_persisted_app_{abs(hash(str(resolved))):x}"
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise AppLoadError(f"{target} is not a Python module", "pass a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # attrs and dataclasses resolve annotations through it
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:
            del sys.modules[name]
            raise _import_failed(target, error, f"`python {target}` shows the whole traceback") from error
        return module
    try:
        if target in sys.modules:
            return importlib.reload(sys.modules[target])
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is not None and (target == error.name or target.startswith(f"{error.name}.")):
            raise AppLoadError(
                f"no module named {target!r} is importable from {where}",
                "pass the app's .py path, or its dotted name as seen from the project's root",
            ) from error
        raise _import_failed(
            target, error, f'`python -c "import {target}"` shows the whole traceback'
        ) from error
    except (Exception, SystemExit) as error:
        raise _import_failed(
            target, error, f'`python -c "import {target}"` shows the whole traceback'
        ) from error


def _import_failed(target: str, error: BaseException, how: str) -> AppLoadError:
    """One line for an app that raised while importing: the exception and the app's own line that raised it."""
    if isinstance(error, SyntaxError) and error.filename:
        at = f"{display_path(error.filename)}:{error.lineno}"
        message = error.msg
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")]
        at = f"{display_path(frames[-1].filename)}:{frames[-1].lineno}" if frames else target
        message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return AppLoadError(f"importing {target} failed at {at}: {text}", f"fix the app; {how}")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path relative to the current directory when it is under it, as a person there would type it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- documents


def key_dirname(key: str) -> str:
    """A portable directory name for a key: unsafe characters (``:`` ``/`` braces...) percent-encoded."""
    name = urllib.parse.quote(key, safe="-_.")
    return "%2E" + name[1:] if name.startswith(".") else name


def schema_document(spec: PersistedSpec, examples: Sequence[Any] = ()) -> dict[str, Any]:
    """The committed JSON Schema of ``spec``'s declared version.

    ``examples`` starts with the unstructured default; extra ones (kept from the committed file)
    follow, so authors can add realistic values for ``check`` to migrate.
    """
    doc = spec.type_codec.json_schema()
    default = spec.type_codec.unstructure(spec.default())
    extra = [e for e in examples if e != default]
    doc.update(
        {
            "$id": f"urn:solara-persisted:{key_dirname(spec.key)}:v{spec.version}",
            "title": f"{spec.key} v{spec.version}",
            "examples": [default, *extra],
            META: {
                "key": spec.key,
                "version": spec.version,
                "type": type_name(spec.type),
                "codec": spec.codec_name,
                "family": spec.is_template,
            },
        }
    )
    return doc


def render(doc: dict[str, Any]) -> bytes:
    """Deterministic bytes: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def read_committed(schemas_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Every committed schema, by key (from its metadata) and version."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    if not schemas_dir.is_dir():
        return out
    for path in sorted(schemas_dir.glob("*/v*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            meta = doc[META]
            out.setdefault(str(meta["key"]), {})[int(meta["version"])] = doc
        except (ValueError, KeyError, TypeError) as error:
            reason = f"no {error} in {META}" if isinstance(error, KeyError) else f"{error}"
            raise SchemaFileError(
                f"{path} is not a schema codegen wrote ({reason})",
                "restore it from version control, or delete it and rerun `solara-persisted codegen`",
            ) from error
    return out


# --------------------------------------------------------------------------- differences


@attrs.frozen
class Change:
    """One difference between two versions' schemas, judged by whether old stored data still fits."""

    path: str
    breaking: bool
    reason: str

    @property
    def verdict(self) -> str:
        return "breaking" if self.breaking else "compatible"


def _resolve(node: Any, doc: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = doc.get("$defs", {})[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _shape(node: Any, doc: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """The node with references inlined (a recursive one as its name) and naming keywords dropped."""
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            return {"recursive": stack.index(name)}
        stack = (*stack, name)
        node = doc.get("$defs", {})[name]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in _NOT_SHAPE:
            continue
        if k == "properties":
            v = {p: _shape(s, doc, stack) for p, s in v.items()}
        elif isinstance(v, dict):
            v = _shape(v, doc, stack)
        elif k in ("anyOf", "prefixItems"):
            v = [_shape(s, doc, stack) for s in v]
        elif k == "required":
            v = sorted(v)
        out[k] = v
    return out


def _kind(node: dict[str, Any]) -> str:
    if "type" in node:
        return str(node["type"])
    if "const" in node or "enum" in node:
        return "value set"
    return "schema"


def diff(old_doc: dict[str, Any], new_doc: dict[str, Any]) -> list[Change]:
    """How the stored JSON form changed from ``old_doc`` to ``new_doc``, each change classified."""
    walk = _SchemaDiff(old_doc, new_doc)
    walk.node(old_doc, new_doc, "")
    return walk.changes


def _values(node: dict[str, Any]) -> set[str] | None:
    if "const" in node:
        return {json.dumps(node["const"])}
    if "enum" in node:
        return {json.dumps(v) for v in node["enum"]}
    return None


class _SchemaDiff:
    """One walk over two schema documents in step, collecting classified changes."""

    def __init__(self, old_doc: dict[str, Any], new_doc: dict[str, Any]) -> None:
        self.old_doc, self.new_doc = old_doc, new_doc
        self.changes: list[Change] = []
        self._seen: set[tuple[int, int]] = set()  # recursive $refs are compared once

    def _add(self, path: str, breaking: bool, reason: str) -> None:
        self.changes.append(Change(path or "(root)", breaking, reason))

    def node(self, old: Any, new: Any, path: str) -> None:
        old, new = _resolve(old, self.old_doc), _resolve(new, self.new_doc)
        if (id(old), id(new)) in self._seen:
            return
        self._seen.add((id(old), id(new)))
        if _shape(old, self.old_doc) == _shape(new, self.new_doc):
            return
        if "anyOf" in old or "anyOf" in new:
            self.alternatives(old, new, path)
            return
        if _kind(old) != _kind(new):
            if (old.get("type"), new.get("type")) == ("integer", "number"):
                self._add(path, False, "widened from integer to number")
            else:
                self._add(path, True, f"type changed from {_kind(old)} to {_kind(new)}")
            return
        old_values, new_values = _values(old), _values(new)
        if old_values is not None and new_values is not None:
            if old_values - new_values:
                self._add(path, True, f"values removed: {', '.join(sorted(old_values - new_values))}")
            if new_values - old_values:
                self._add(path, False, f"values added: {', '.join(sorted(new_values - old_values))}")
            return
        if old.get("type") == "object":
            self.object(old, new, path)
        elif old.get("type") == "array":
            self.array(old, new, path)
        else:
            changed = sorted(
                k for k in set(old) | set(new) if k not in _NOT_SHAPE and old.get(k) != new.get(k)
            )
            self._add(path, True, f"changed {', '.join(changed)}")

    def alternatives(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_alts = [_resolve(a, self.old_doc) for a in old.get("anyOf", [old])]
        new_alts = [_resolve(a, self.new_doc) for a in new.get("anyOf", [new])]
        new_shapes = [_shape(a, self.new_doc) for a in new_alts]
        matched: set[int] = set()
        for alt in old_alts:
            shape = _shape(alt, self.old_doc)
            if shape in new_shapes:
                matched.add(new_shapes.index(shape))
                continue
            same_kind = [i for i, n in enumerate(new_alts) if _kind(n) == _kind(alt) and i not in matched]
            if len(same_kind) == 1:
                matched.add(same_kind[0])
                self.node(alt, new_alts[same_kind[0]], path)
            else:
                self._add(path, True, f"alternative {_kind(alt)} removed")
        for i, alt in enumerate(new_alts):
            if i not in matched:
                self._add(path, False, f"alternative {_kind(alt)} added")

    def object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
        closed = new.get("additionalProperties") is False
        for name in old_props:
            sub = f"{path}{migrations.json_path([name])}"
            if name not in new_props:
                if closed:
                    self._add(sub, True, "property removed: stored objects that have it are refused")
                else:
                    self._add(sub, False, "property removed (extra properties are accepted)")
                continue
            if name in new_req and name not in old_req:
                self._add(sub, True, "property became required: stored objects may lack it")
            elif name in old_req and name not in new_req:
                self._add(sub, False, "property became optional (has a default)")
            self.node(old_props[name], new_props[name], sub)
        for name in new_props:
            if name not in old_props:
                sub = f"{path}{migrations.json_path([name])}"
                if name in new_req:
                    self._add(sub, True, "new required property without a default: stored objects lack it")
                else:
                    self._add(sub, False, "added optional property (has a default)")
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.node(old_extra, new_extra, f"{path}[*]")
        elif old_extra != new_extra:
            if new_extra is False or isinstance(new_extra, dict):
                self._add(f"{path}[*]", True, "other properties must now be absent or fit a new schema")
            else:
                self._add(f"{path}[*]", False, "other properties are now accepted")

    def array(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_fixed, new_fixed = old.get("prefixItems"), new.get("prefixItems")
        if (old_fixed is None) != (new_fixed is None) or (
            old_fixed and len(old_fixed) != len(new_fixed or ())
        ):
            self._add(path, True, "fixed tuple length or form changed")
            return
        for i, (a, b) in enumerate(zip(old_fixed or (), new_fixed or (), strict=True)):
            self.node(a, b, f"{path}[{i}]")
        if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
            self.node(old["items"], new["items"], f"{path}[]")
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self._add(path, True, "items must now be unique (list became a set)")
        elif old.get("uniqueItems") and not new.get("uniqueItems"):
            self._add(path, False, "items need no longer be unique")


# --------------------------------------------------------------------------- codegen


@attrs.frozen
class Problem:
    """One reason ``check`` (or ``codegen``) fails, with the fix.

    ``site`` (``path:line``) is where to look: the spec's declaration, or a committed schema file;
    CI annotations point at it.
    """

    key: str
    problem: str
    fix: str
    site: str | None = attrs.field(default=None, kw_only=True)


@attrs.define
class GenerateReport:
    written: list[Path] = attrs.Factory(list)
    unchanged: list[Path] = attrs.Factory(list)
    stubs: list[Path] = attrs.Factory(list)
    skipped: list[str] = attrs.Factory(list)
    problems: list[Problem] = attrs.Factory(list)
    #: ``persist=True`` reactives: persisted, but with no schema to write (``untyped_notes``).
    untyped: list[str] = attrs.Factory(list)


def untyped_notes(registry: Registry) -> list[str]:
    """One line per ``persist=True`` reactive: persisted without a type, and how to declare it typed."""
    return [
        f"{spec.key} (declared at {spec.site}, {spec.codec_name} following its default "
        f"{spec.type.__qualname__}): no schema, no versions; to evolve it safely declare it with "
        f"@persisted(key={spec.key!r}, version=1) over a default factory annotated with its type, "
        "and drop persist= from the solara.reactive"
        for spec in registry.untyped()
    ]


def _json_specs(registry: Registry, skipped: list[str]) -> list[PersistedSpec]:
    out = []
    for spec in registry.specs():
        if spec.codec_name == "json":
            out.append(spec)
        else:
            skipped.append(f"{spec.key} (pickle: no JSON form)")
    return out


def _previous(versions: dict[int, dict[str, Any]], version: int) -> int | None:
    older = [v for v in versions if v < version]
    return max(older) if older else None


def generate(registry: Registry, schemas_dir: Path, *, force: bool = False) -> GenerateReport:
    """Write the declared version's schema of every JSON spec, and a migration stub where one is missing.

    A committed version whose shape changed is left alone (a problem: bump the version) unless
    ``force``, for a version that was never deployed.
    """
    report = GenerateReport(untyped=untyped_notes(registry))
    committed = read_committed(schemas_dir)
    for spec in _json_specs(registry, report.skipped):
        versions = committed.get(spec.key, {})
        existing = versions.get(spec.version)
        doc = schema_document(spec, existing.get("examples", ()) if existing else ())
        directory = schemas_dir / key_dirname(spec.key)
        path = directory / f"v{spec.version}.json"
        if existing is not None and not force:
            changes = diff(existing, doc)
            if changes:
                report.problems.append(_unbumped(spec, changes))
                continue
        data = render(doc)
        if path.exists() and path.read_bytes() == data:
            report.unchanged.append(path)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            report.written.append(path)
        previous = _previous(versions, spec.version)
        stub_path = directory / f"migrate_v{spec.version - 1}_to_v{spec.version}.py.txt"
        if previous is not None and spec.version - 1 not in spec.steps:
            stub_path.write_text(
                migration_stub(spec, previous, diff(versions[previous], doc), doc), encoding="utf-8"
            )
            report.stubs.append(stub_path)
        elif stub_path.exists():
            stub_path.unlink()  # the migration is declared now
    return report


def _unbumped(spec: PersistedSpec, changes: list[Change]) -> Problem:
    summary = "; ".join(f"{c.verdict} {c.path}: {c.reason}" for c in changes)
    return Problem(
        spec.key,
        f"the shape of version {spec.version} changed without a version bump ({summary})",
        f"declare version={spec.version + 1} with a migration from {spec.version}, "
        "or (for a version never deployed) rerun codegen with --force",
        site=spec.site,
    )


def migration_stub(spec: PersistedSpec, previous: int, changes: list[Change], doc: dict[str, Any]) -> str:
    """Python source (as text) declaring the missing step, the schema difference as comments."""
    step_from = spec.version - 1
    lines = [
        f"# Migration stub for {spec.key!r}, version {step_from} -> {spec.version}, written by",
        "# `solara-persisted codegen`. Move it next to the spec, fill in the TODOs, delete this file.",
        f"# The spec is declared at {spec.site.split(':')[0]}.",
        "#",
        f"# Schema difference (committed v{previous} -> declared v{spec.version}):",
    ]
    lines += [f"#   {c.verdict:<10}  {c.path}: {c.reason}" for c in changes] or ["#   (no shape change)"]
    if previous != step_from:
        lines.append(
            f"# Versions {previous + 1}..{step_from} have no committed schema: declare their steps too."
        )
    default = doc["examples"][0]
    ops = []
    for c in changes:
        name = c.path[1:] if c.path.startswith(".") and c.path[1:].isidentifier() else None
        if name is None:
            ops.append(f"        # TODO {c.path}: {c.reason}")
        elif c.reason.startswith("property removed"):
            ops.append(f"        RemoveField({name!r}),  # or Rename({name!r}, 'new_name')")
        elif c.reason.startswith(("added optional", "new required")):
            value = default.get(name) if isinstance(default, dict) else None
            ops.append(f"        AddField({name!r}, {value!r}),")
        else:
            ops.append(f"        Convert({name!r}, to_new=..., to_old=...),  # TODO: {c.reason}")
    lines += [
        "",
        "from solara_persisted.migrations import AddField, Convert, RemoveField, Rename, migration",
        "",
        "migration(",
        f"    {spec.key!r},  # or the persisted reactive itself",
        f"    from_version={step_from},",
        "    ops=[",
        *ops,
        "    ],",
        ")",
        "",
    ]
    return "\n".join(lines)
