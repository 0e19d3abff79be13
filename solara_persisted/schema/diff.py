"""How a key's stored JSON form changed between two committed schema versions.

Each difference is judged by one question: does data stored under the old schema still fit the
new one? A change that breaks that needs a version bump and a migration.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from .. import migrations
from ..spec import PersistedSpec
from .documents import META, Problem

__all__ = ["Change", "diff", "unbumped"]

_NOT_SHAPE = frozenset({"title", "description", "$comment", "examples", "$schema", "$id", "$defs", META})


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


def unbumped(spec: PersistedSpec, changes: list[Change]) -> Problem:
    """The problem of a committed version whose shape changed in place."""
    summary = "; ".join(f"{c.verdict} {c.path}: {c.reason}" for c in changes)
    return Problem(
        spec.key,
        f"the shape of version {spec.version} changed without a version bump ({summary})",
        f"declare version={spec.version + 1} with a migration from {spec.version}, "
        "or (for a version never deployed) rerun codegen with --force",
        site=spec.site,
    )
