"""The committed JSON Schema documents: one per key and version, in deterministic bytes.

``schema/<key>/v<N>.json`` is written for the declared version of every JSON spec; the older
versions' files stay as history, since their classes no longer exist anywhere else. Both the
generator (``codegen``) and the gate (``check``) read them back through ``read_committed``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ..codec import type_name
from ..errors import SchemaFileError
from ..spec import PersistedSpec, Registry

__all__ = [
    "DIALECT",
    "META",
    "Problem",
    "json_specs",
    "key_dirname",
    "previous_version",
    "read_committed",
    "render",
    "schema_document",
]

META = "x-solara-persisted"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


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


def json_specs(registry: Registry, skipped: list[str]) -> list[PersistedSpec]:
    """The specs with a JSON form (the others are named in ``skipped``)."""
    out = []
    for spec in registry.specs():
        if spec.codec_name == "json":
            out.append(spec)
        else:
            skipped.append(f"{spec.key} (pickle: no JSON form)")
    return out


def previous_version(versions: dict[int, dict[str, Any]], version: int) -> int | None:
    """The newest committed version older than ``version``, if any."""
    older = [v for v in versions if v < version]
    return max(older) if older else None
