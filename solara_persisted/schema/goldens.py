"""Golden payloads per key and version, restored through the real engine: proof that old state still loads.

A golden is ``goldens/<key>/v<N>.json``: the JSON payload exactly as the codec wrote it at version
N (one line, then a newline). It is committed once and never changed, because it stands for state
that users of that release still have in the backend. Secrets differ per environment, so goldens
hold payloads, not signed envelopes: ``restore_goldens`` seals each one with a throwaway key ring
and restores it through ``Engine.restore`` on the memory backend, so the envelope, the migration
chain and the validation after it run exactly as on a user's reconnect.

``write_goldens`` (the ``solara-persisted golden`` command) adds the golden of each declared
version and refuses to touch an existing one; ``GoldenGuard`` lets a test session put back any
golden that something rewrote or deleted while it ran.
"""

from __future__ import annotations

import logging
import secrets
import string
import urllib.parse
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ..backends import create_backend
from ..config import Settings
from ..engine import Engine
from ..envelope import Codec
from ..errors import CodecError
from ..spec import PersistedSpec, Registry
from .documents import Problem, key_dirname, read_committed

__all__ = [
    "Golden",
    "GoldenGuard",
    "GoldenReport",
    "RestoredGolden",
    "WriteReport",
    "golden_path",
    "read_goldens",
    "restore_goldens",
    "write_goldens",
]

#: Only the engine's warnings explain a failed restore; they are collected into the failure message.
_STATE_LOGGER = "solara.state"


@attrs.frozen
class Golden:
    """One committed golden: the payload ``key`` stored at ``version``."""

    key: str
    version: int
    path: Path
    payload: bytes

    @property
    def label(self) -> str:
        return f"{self.key}@v{self.version}"


@attrs.frozen
class RestoredGolden:
    """What a golden restored to, at the declared version."""

    golden: Golden
    spec: PersistedSpec
    value: Any

    def document(self) -> dict[str, Any]:
        """A stable, readable JSON form of the restored value (what snapshot files hold)."""
        return {
            "key": self.golden.key,
            "stored_version": self.golden.version,
            "declared_version": self.spec.version,
            "value": self.spec.type_codec.unstructure(self.value),
        }


@attrs.define
class GoldenReport:
    restored: list[RestoredGolden] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)


@attrs.define
class WriteReport:
    #: Each written golden and where its value came from.
    written: list[tuple[Path, str]] = attrs.Factory(list)
    kept: list[Path] = attrs.Factory(list)
    skipped: list[str] = attrs.Factory(list)
    problems: list[Problem] = attrs.Factory(list)


def golden_path(directory: Path, key: str, version: int) -> Path:
    """Where the golden of ``key`` at ``version`` lives (the key directory named as for schemas)."""
    return directory / key_dirname(key) / f"v{version}.json"


def _golden_files(directory: Path) -> list[Path]:
    return (
        sorted(p for p in directory.glob("*/v*.json") if p.stem[1:].isdigit()) if directory.is_dir() else []
    )


def read_goldens(directory: Path) -> dict[str, dict[int, Golden]]:
    """Every committed golden under ``directory``, by key and version."""
    out: dict[str, dict[int, Golden]] = {}
    for path in _golden_files(directory):
        key = urllib.parse.unquote(path.parent.name)
        version = int(path.stem[1:])
        data = path.read_bytes()
        payload = data[:-1] if data.endswith(b"\n") else data
        out.setdefault(key, {})[version] = Golden(key, version, path, payload)
    return out


# --------------------------------------------------------------------------- writing


def golden_payload(spec: PersistedSpec, schemas_dir: Path) -> tuple[bytes, str]:
    """The codec's bytes for the golden value and where the value came from.

    The last of the committed schema's ``examples`` (codegen puts the default first, so a
    realistic value added by hand wins), else the spec's default.
    """
    committed = read_committed(schemas_dir).get(spec.key, {}).get(spec.version)
    examples = committed.get("examples", []) if committed else []
    if examples:
        source = f"the last example of {golden_path(schemas_dir, spec.key, spec.version)}"
        value = spec.type_codec.structure(examples[-1])
    else:
        source = "the default"
        value = spec.default()
    return spec.type_codec.dumps(value), source


def write_goldens(registry: Registry, directory: Path, schemas_dir: Path) -> WriteReport:
    """Add the golden of every JSON spec's declared version; an existing golden is never rewritten."""
    report = WriteReport()
    for spec in registry.specs():
        if spec.codec_name != "json":
            report.skipped.append(f"{spec.key} (pickle: no JSON form)")
            continue
        path = golden_path(directory, spec.key, spec.version)
        if path.exists():
            report.kept.append(path)
            continue
        try:
            payload, source = golden_payload(spec, schemas_dir)
        except CodecError as error:
            report.problems.append(
                Problem(
                    spec.key,
                    f"the last example of its committed v{spec.version} schema does not fit the declared "
                    f"type: {error}",
                    f"correct that example in {golden_path(schemas_dir, spec.key, spec.version)}",
                )
            )
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as file:  # exclusive: a golden appearing meanwhile is kept too
                file.write(payload + b"\n")
        except FileExistsError:
            report.kept.append(path)
            continue
        report.written.append((path, source))
    return report


# --------------------------------------------------------------------------- restoring


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def field_for(spec: PersistedSpec) -> str:
    """A concrete stored key: the key itself, or the family's template filled in."""
    if not spec.is_template:
        return spec.key
    names = [field for _, field, _, _ in string.Formatter().parse(spec.key) if field]
    return spec.key.format(**dict.fromkeys(names, "golden"))


def _restore_one(engine: Engine, spec: PersistedSpec, golden: Golden) -> RestoredGolden | str:
    where = f"{golden.label} ({golden.path})"
    field = field_for(spec)
    if engine.registry.resolve(field) is not spec:
        return f"{where}: its stored key {field!r} resolves to another declaration; make the keys distinct"
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    if not engine.store_payloads(kernel_id, cookie, {field: (Codec.JSON, golden.version, golden.payload)}):
        return f"{where}: the memory backend refused to store it"
    logger = logging.getLogger(_STATE_LOGGER)
    warnings = _Warnings()
    logger.addHandler(warnings)
    try:
        restored = engine.restore(kernel_id, cookie)
    finally:
        logger.removeHandler(warnings)
    if restored.result == "success" and field in restored.values:
        return RestoredGolden(golden, spec, restored.values[field])
    details = "; ".join(warnings.messages) or (
        f"no reversible migration from version {golden.version} down to {spec.version}"
        if golden.version > spec.version
        else "no details logged"
    )
    return (
        f"{where} does not restore at declared version {spec.version}: restore result={restored.result} "
        f"cause={restored.cause}: {details}. Fix the migration chain of {spec.key!r}; the golden is "
        "history and stays as it is"
    )


def restore_goldens(
    registry: Registry, directory: Path, *, keys: Iterable[str] | None = None
) -> GoldenReport:
    """Restore every golden of ``keys`` (default: every declared JSON key) through a real engine.

    Also a problem: a declared version without its golden (run ``solara-persisted golden``), and,
    when checking every key, goldens of a key the app neither declares nor retired.
    """
    report = GoldenReport()
    goldens = read_goldens(directory)
    if keys is None:
        specs = [spec for spec in registry.specs() if spec.codec_name == "json"]
        retired = registry.retired()
        declared = {spec.key for spec in registry.specs()}
        for key in sorted(set(goldens) - declared - set(retired)):
            report.problems.append(
                f"{directory / key_dirname(key)} holds goldens of {key!r}, which the app does not declare: "
                f'import the module that declares it, or declare retired("{key}", successor=...)'
            )
    else:
        specs = []
        for key in keys:
            spec = registry.get(key)
            if spec is None:
                report.problems.append(
                    f"{key!r} is not a declared persisted key; import the app that declares it"
                )
            elif spec.codec_name != "json":
                report.problems.append(f"{key!r} is pickled, which has no JSON form to keep goldens of")
            else:
                specs.append(spec)
    secret = secrets.token_urlsafe(32)
    settings = Settings(backend="memory", secret_keys=(secret,), session_http_only=True, production=False)
    engine = Engine(settings, backend=create_backend(settings), registry=registry)
    try:
        for spec in specs:
            versions = goldens.get(spec.key, {})
            if spec.version not in versions:
                report.problems.append(
                    f"{spec.key!r} is declared at version {spec.version} but "
                    f"{golden_path(directory, spec.key, spec.version)} is missing: run `solara-persisted "
                    f"golden APP_MODULE... --dir {directory}` and commit it"
                )
            for version in sorted(versions):
                outcome = _restore_one(engine, spec, versions[version])
                if isinstance(outcome, str):
                    report.problems.append(outcome)
                else:
                    report.restored.append(outcome)
    finally:
        engine.close()
    return report


# --------------------------------------------------------------------------- guarding


class GoldenGuard:
    """The bytes of every golden a test session has seen, to put back whatever changed them.

    Goldens are inputs, never outputs: a ``--snapshot-update`` run (or any test) that rewrites or
    deletes one would silently change what "old state still loads" means.
    """

    def __init__(self) -> None:
        self._files: dict[Path, bytes] = {}

    def watch(self, directory: Path) -> None:
        """Remember the goldens under ``directory`` as they are now (the first reading wins)."""
        for path in _golden_files(directory):
            self._files.setdefault(path.resolve(), path.read_bytes())

    def put_back(self) -> list[str]:
        """Restore every remembered golden that was rewritten or deleted; one line per file."""
        lines = []
        for path, data in sorted(self._files.items()):
            try:
                current: bytes | None = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            what = "deleted" if current is None else "rewritten"
            lines.append(f"{path} was {what} during the test session and has been put back")
        return lines
