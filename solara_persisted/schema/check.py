"""The ``check`` gate: the app's specs against the committed schemas, before a deploy.

A shape changed without a version bump, a bump without a migration, a migration whose output does
not fit the next schema on the committed examples, or a key that vanished without being retired
would each lose or corrupt some user's state on the next deploy: each is a ``Problem``. The report
also says, per key, what the committed history shows (``unchanged``, ``evolved`` from one version
to the next, ``retired``...), so a breaking change that a declared migration covers reads as covered
rather than as a red alarm, and it renders for a terminal (a table), a CI log (plain lines), a
program (JSON) and GitHub Actions (annotations on the declaration).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import attrs
import jsonschema
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import migrations
from ..errors import MigrationError
from ..spec import PersistedSpec, Registry
from .codegen import untyped_notes
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

__all__ = [
    "STATUSES",
    "CheckReport",
    "KeyReport",
    "Status",
    "annotation",
    "check",
    "dumps",
    "github_lines",
    "plain_lines",
    "print_table",
    "problem_line",
    "summary",
    "to_json",
    "verdict_line",
]

Status = Literal["unchanged", "evolved", "retired", "new", "drifted", "gone"]
#: What the committed history says about a key, in the order the summary lists them.
STATUSES: dict[Status, str] = {
    "unchanged": "unchanged",
    "evolved": "evolved",
    "retired": "retired",
    "new": "without a committed schema",
    "drifted": "changed without a version bump",
    "gone": "gone without retired(...)",
}


@attrs.define
class KeyReport:
    """One key: its committed versions, its declared one, and the changes of its last step."""

    key: str
    committed: list[int]
    declared: int | None
    status: Status = "unchanged"
    #: (from, to) of the step the changes describe, when the key evolved.
    step: tuple[int, int] | None = None
    #: A migration is declared for every version from ``step[0]`` up to the declared one.
    migrated: bool = False
    #: (which versions, change): the last committed step, or the drift of the declared version.
    changes: list[tuple[str, Change]] = attrs.Factory(list)
    #: ``path:line`` of the declaration, or the newest committed schema of a key no longer declared.
    site: str | None = None

    def covered(self, change: Change) -> bool:
        """A breaking change that the declared migrations turn into the new shape."""
        return change.breaking and self.status == "evolved" and self.migrated

    def verdict(self, change: Change) -> str:
        if self.covered(change) and self.step is not None:
            return f"breaking, covered by migration {_arrow(*self.step)}"
        return change.verdict

    def evolution(self) -> str:
        """``breaking .total, covered by migration`` / ``compatible`` / ``same shape``."""
        breaking = list(dict.fromkeys(c.path for _, c in self.changes if c.breaking))
        if breaking:
            cover = "covered by migration" if self.migrated else "no migration"
            return f"breaking {', '.join(breaking)}, {cover}"
        return "compatible" if self.changes else "same shape"


@attrs.define
class CheckReport:
    """What ``check`` found: one ``KeyReport`` per declared or committed key, and the problems."""

    schemas_dir: Path = Path("schemas")
    keys: list[KeyReport] = attrs.Factory(list)
    problems: list[Problem] = attrs.Factory(list)
    skipped: list[str] = attrs.Factory(list)
    #: ``persist=True`` reactives (``untyped_notes``); listed, never a failure.
    untyped: list[str] = attrs.Factory(list)
    #: Set when no key is both declared and committed: likely another app's schemas directory.
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _arrow(old: int, new: int) -> str:
    return f"v{old}→v{new}"


def check(registry: Registry, schemas_dir: Path) -> CheckReport:
    """Everything that would lose or corrupt stored state on the next deploy, as problems."""
    report = CheckReport(schemas_dir, untyped=untyped_notes(registry))
    committed = read_committed(schemas_dir)
    for spec in json_specs(registry, report.skipped):
        versions = committed.get(spec.key, {})
        key_report = KeyReport(spec.key, sorted(versions), spec.version, site=spec.site)
        report.keys.append(key_report)
        _check_spec(spec, versions, key_report, report.problems, schemas_dir)
    declared = {spec.key for spec in registry.specs()}
    retired = registry.retired()
    if committed and declared and not set(committed) & (declared | set(retired)):
        # every key renamed at once, or (far more often) the wrong pairing of app and directory
        report.hint = (
            f"no key is both declared and committed in {schemas_dir}/: if it holds another app's "
            "schemas, pass --schemas-dir with this app's own directory instead of retiring anything"
        )
    for key in sorted(set(committed) - declared):
        newest = schemas_dir / key_dirname(key) / f"v{max(committed[key])}.json"
        site = f"{newest}:1"
        status: Status = "retired" if key in retired else "gone"
        report.keys.append(KeyReport(key, sorted(committed[key]), None, status=status, site=site))
        if key not in retired:
            report.problems.append(
                Problem(
                    key,
                    f"has committed schemas in {schemas_dir}/ but no app module checked declares it: "
                    "its stored values would be ignored",
                    f'if the app dropped or renamed it, declare retired("{key}", successor="new.key") '
                    "(successor=None to drop it on purpose); if another app declares it, check that app "
                    "too, or give each app its own --schemas-dir",
                    site=site,
                )
            )
        elif retired[key] is not None and retired[key] not in declared:
            report.problems.append(
                Problem(
                    key,
                    f"is retired with successor {retired[key]!r}, which is not declared",
                    "fix the successor key",
                    site=site,
                )
            )
    return report


def _check_spec(
    spec: PersistedSpec,
    versions: dict[int, dict[str, Any]],
    key_report: KeyReport,
    problems: list[Problem],
    schemas_dir: Path,
) -> None:
    def problem(text: str, fix: str) -> None:
        problems.append(Problem(spec.key, text, fix, site=spec.site))

    current = versions.get(spec.version)
    doc = schema_document(spec, current.get("examples", ()) if current else ())
    if not versions:
        key_report.status = "new"
        problem("has no committed schema", f"run `solara-persisted codegen` and commit {schemas_dir}/")
        return
    if current is not None:
        changes = diff(current, doc)
        if changes:
            key_report.status = "drifted"
            key_report.changes = [(f"v{spec.version} (unbumped)", c) for c in changes]
            problems.append(unbumped(spec, changes))
            return
        if render(current) != render(doc):
            problem(
                f"v{spec.version}.json is out of date (same shape: names or examples changed)",
                "rerun codegen and commit",
            )
    newer = [v for v in versions if v > spec.version]
    if newer:
        problem(
            f"declares version {spec.version} but version {max(newer)} is committed",
            "versions only go up: bump past the committed ones",
        )
    previous = previous_version(versions, spec.version)
    if previous is None:
        return
    missing = [v for v in range(min(versions), spec.version) if v not in spec.steps]
    key_report.status = "evolved"
    key_report.step = (previous, spec.version)
    key_report.migrated = not any(v >= previous for v in missing)
    key_report.changes = [(f"v{previous} -> v{spec.version}", c) for c in diff(versions[previous], doc)]
    if current is None:
        problem(f"v{spec.version}.json is not committed", "run `solara-persisted codegen` and commit it")
    for v in missing:
        problem(
            f"the bump from version {v} to {v + 1} has no migration",
            f"declare migration(<reactive>, from_version={v}, ops=[...]) next to the spec "
            f"(codegen writes a stub into {schemas_dir / key_dirname(spec.key)}/)",
        )
    if missing:
        return
    schemas = {**versions, spec.version: doc}
    problems.extend(_check_examples(spec, schemas))


def _check_examples(spec: PersistedSpec, schemas: dict[int, dict[str, Any]]) -> list[Problem]:
    """Run every committed example through each step, and the whole chain, forwards and (where reversible) back."""
    problems = []
    for version in sorted(schemas):
        for i, example in enumerate(schemas[version].get("examples", ())):
            label = f"example {i} of v{version}"
            nxt, prv = version + 1, version - 1
            step_problems = []
            if version < spec.version and nxt in schemas:
                step_problems += _step_fits(spec, version, nxt, example, schemas[nxt], label)
            if prv in schemas and spec.steps[prv].reversible:
                step_problems += _step_fits(spec, version, prv, example, schemas[prv], label)
            problems += step_problems
            if version < spec.version and not step_problems:  # else the same failure, once more
                try:
                    migrations.convert(spec, spec.key, version, orjson.dumps(example))
                except MigrationError as error:
                    problems.append(
                        Problem(
                            spec.key,
                            f"{label} does not restore: {error}",
                            "fix the migration chain",
                            site=spec.site,
                        )
                    )
    return problems


def _step_fits(
    spec: PersistedSpec, version: int, target: int, example: Any, schema: dict[str, Any], label: str
) -> list[Problem]:
    direction = "backwards " if target < version else ""
    try:
        obj = migrations.run_chain(spec, spec.key, version, copy.deepcopy(example), target)
    except MigrationError as error:
        return [Problem(spec.key, f"{label}: {error}", "fix the migration", site=spec.site)]
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(obj))
    if error is None:
        return []
    path = migrations.json_path(list(error.absolute_path)) or "the root"
    return [
        Problem(
            spec.key,
            f"{label} migrated {direction}to v{target} does not fit v{target}.json at {path}: {error.message}",
            f"fix the migration between versions {min(version, target)} and {max(version, target)}",
            site=spec.site,
        )
    ]


# --------------------------------------------------------------------------- output


def summary(report: CheckReport) -> str:
    """``5 keys: 4 unchanged, 1 evolved (shop.cart v2→v3: breaking .total, covered by migration)``."""
    parts = []
    for status, label in STATUSES.items():
        group = [k for k in report.keys if k.status == status]
        if not group:
            continue
        if status == "evolved":
            steps = "; ".join(f"{k.key} {_arrow(*k.step)}: {k.evolution()}" for k in group if k.step)
            parts.append(f"{len(group)} evolved ({steps})")
        else:
            parts.append(f"{len(group)} {label}")
    if report.untyped:
        parts.append(f"{len(report.untyped)} untyped (persist=True, no schema to check)")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (pickle, no JSON form)")
    count = len(report.keys)
    return f"{count} key{'' if count == 1 else 's'}: {', '.join(parts) or 'none'}"


def verdict_line(report: CheckReport) -> str:
    if report.ok:
        return "check passed"
    count = len(report.problems)
    return f"check failed: {count} problem{'' if count == 1 else 's'}"


def _status(key: KeyReport) -> str:
    """``evolved v2→v3 (v1, v2, v3 committed)``: what the history says, and the history."""
    label = f"evolved {_arrow(*key.step)}" if key.status == "evolved" and key.step else STATUSES[key.status]
    committed = ", ".join(f"v{v}" for v in key.committed) or "nothing"
    declared = f"v{key.declared} declared" if key.declared is not None else "not declared"
    return f"{label} ({committed} committed, {declared})"


def problem_line(problem: Problem) -> str:
    return f"FAIL {problem.key} {problem.problem}. Fix: {problem.fix}"


def plain_lines(report: CheckReport, *, annotate: bool = False) -> list[str]:
    """One line per key and per change, then the problems and the summary: survives any CI log.

    With ``annotate`` each problem is a GitHub Actions error annotation instead of a ``FAIL`` line.
    """
    lines = []
    for key in report.keys:
        lines.append(f"{key.key}: {_status(key)}")
        lines += [
            f"  {versions} {change.path}: {key.verdict(change)}: {change.reason}"
            for versions, change in key.changes
        ]
    for problem in report.problems:
        if annotate:
            message = f"{problem.key} {problem.problem}. Fix: {problem.fix}"
            lines.append(annotation("error", message, problem.site, f"solara-persisted check: {problem.key}"))
        else:
            lines.append(problem_line(problem))
    lines += [f"skipped {skipped}" for skipped in report.skipped]
    lines += [f"untyped (persist=True) {note}" for note in report.untyped]
    lines += [f"hint: {report.hint}"] if report.hint else []
    return [*lines, summary(report), verdict_line(report)]


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str, message: str, site: str | None = None, title: str = "solara-persisted check"
) -> str:
    """A GitHub Actions workflow command (``::error file=...,line=...::message``)."""
    props = []
    if site:
        file, _, line = site.rpartition(":")
        if file and line.isdigit():
            props += [f"file={_escape_property(file)}", f"line={line}"]
        else:
            props.append(f"file={_escape_property(site)}")
    props.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def github_lines(report: CheckReport) -> list[str]:
    """The plain report with each problem as an error annotation on its declaration (or schema file)."""
    return plain_lines(report, annotate=True)


def to_json(report: CheckReport) -> dict[str, Any]:
    """The whole report for a program: keys with their changes, problems with their sites, the summary."""
    return {
        "ok": report.ok,
        "schemas_dir": str(report.schemas_dir),
        "summary": summary(report),
        "keys": [
            {
                "key": key.key,
                "status": key.status,
                "committed": key.committed,
                "declared": key.declared,
                "step": list(key.step) if key.step else None,
                "site": key.site,
                "changes": [
                    {
                        "versions": versions,
                        "path": change.path,
                        "verdict": change.verdict,
                        "covered_by_migration": key.covered(change),
                        "reason": change.reason,
                    }
                    for versions, change in key.changes
                ],
            }
            for key in report.keys
        ],
        "problems": [
            {"key": p.key, "problem": p.problem, "fix": p.fix, "site": p.site} for p in report.problems
        ],
        "skipped": report.skipped,
        "untyped": report.untyped,
        "hint": report.hint,
    }


def dumps(report: CheckReport) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False)


def print_table(console: Console, report: CheckReport) -> None:
    """For a person at a terminal: a table of keys and changes, coloured verdicts, the summary last.

    Five columns (the versions are in the status) so it stays readable in 80 columns.
    """
    table = Table(title=f"persisted keys against {report.schemas_dir}/", title_justify="left")
    table.add_column("key", overflow="fold")
    table.add_column("status")
    table.add_column("path", overflow="fold")
    table.add_column("verdict")
    table.add_column("reason", ratio=1)
    for key in report.keys:
        first = (escape(key.key), escape(_status(key)))
        if not key.changes:
            table.add_row(*first, "", "", "")
        for i, (_, change) in enumerate(key.changes):
            covered = key.covered(change)
            style = "yellow" if covered else "red" if change.breaking else "green"
            verdict = "breaking, migrated" if covered else change.verdict
            table.add_row(
                *(first if i == 0 else ("", "")),
                escape(change.path),
                f"[{style}]{verdict}[/]",
                escape(change.reason),
            )
    console.print(table)
    _print_notes(console, report.problems, report.skipped, report.untyped)
    if report.hint:
        console.print(f"[bold]hint:[/] {escape(report.hint)}", highlight=False, soft_wrap=True)
    console.print(summary(report), highlight=False, soft_wrap=True)
    style = "green" if report.ok else "red"
    console.print(f"[{style}]{verdict_line(report)}[/]", highlight=False)


def _print_notes(
    console: Console, problems: Iterable[Problem], skipped: Iterable[str], untyped: Iterable[str]
) -> None:
    for problem in problems:
        console.print(
            f"[red]FAIL[/] [bold]{escape(problem.key)}[/] {escape(problem.problem)}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"     fix: {escape(problem.fix)}", highlight=False, soft_wrap=True)
    for note in skipped:
        console.print(f"[dim]skipped {escape(note)}[/]", soft_wrap=True)
    for note in untyped:
        console.print(f"[yellow]untyped (persist=True)[/] {escape(note)}", highlight=False, soft_wrap=True)
