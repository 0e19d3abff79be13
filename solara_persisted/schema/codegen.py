"""``codegen``: write the declared version's schema of every JSON spec, and a migration stub
where a version bump has no migration yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ..spec import PersistedSpec, Registry
from .diff import Change, diff, unbumped
from .documents import (
    Problem,
    json_specs,
    key_dirname,
    previous_version,
    read_committed,
    render,
    schema_document,
)

__all__ = ["GenerateReport", "generate", "migration_stub", "untyped_notes"]


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


def generate(registry: Registry, schemas_dir: Path, *, force: bool = False) -> GenerateReport:
    """Write the declared version's schema of every JSON spec, and a migration stub where one is missing.

    A committed version whose shape changed is left alone (a problem: bump the version) unless
    ``force``, for a version that was never deployed.
    """
    report = GenerateReport(untyped=untyped_notes(registry))
    committed = read_committed(schemas_dir)
    for spec in json_specs(registry, report.skipped):
        versions = committed.get(spec.key, {})
        existing = versions.get(spec.version)
        doc = schema_document(spec, existing.get("examples", ()) if existing else ())
        directory = schemas_dir / key_dirname(spec.key)
        path = directory / f"v{spec.version}.json"
        if existing is not None and not force:
            changes = diff(existing, doc)
            if changes:
                report.problems.append(unbumped(spec, changes))
                continue
        data = render(doc)
        if path.exists() and path.read_bytes() == data:
            report.unchanged.append(path)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            report.written.append(path)
        previous = previous_version(versions, spec.version)
        stub_path = directory / f"migrate_v{spec.version - 1}_to_v{spec.version}.py.txt"
        if previous is not None and spec.version - 1 not in spec.steps:
            stub_path.write_text(
                migration_stub(spec, previous, diff(versions[previous], doc), doc), encoding="utf-8"
            )
            report.stubs.append(stub_path)
        elif stub_path.exists():
            stub_path.unlink()  # the migration is declared now
    return report


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
