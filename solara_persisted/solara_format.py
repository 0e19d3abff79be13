"""Reading the session state Solara's built-in engine stored, so switching engines loses no session.

A fleet that runs Solara's own engine (``persist=True`` with ``SOLARA_STATE_BACKEND`` set, Solara
1.58 to 1.64) adopts solara-persisted with a rolling deploy. For a while, a reconnect lands on an
instance running ours while the session's state is still where Solara's engine put it: our own
hash is a miss. ``Engine`` then takes Solara's hash (``Backend.take_solara_hash``: cookie checked,
Solara's generation bumped so its writer is fenced out) and this module turns the reply into
values for our specs; every restored key is then written in our format with the session's first
write, and Solara's hash, fenced, is left to its TTL.

It is written from the stored format, independently of Solara's code, and imports nothing from
Solara. A stored JSON payload names classes (``"module:qualname"``); none is ever imported or
looked up by that name. An untyped (``persist=True``) spec gets a class-tagged value only when its
default is an instance of exactly the class the tag names, since the default's class is the only
type such a spec declares; a typed ``@persisted`` spec structures the tag's content through its own
annotation, the class name playing no part. Everything is verified before anything is decoded.

The format, as Solara 1.58 to 1.64 store it:

- one hash per kernel at Solara's prefix + kernel id (``SolaraEngineSettings``);
- ``__generation__``: its fencing token, an ASCII integer its every flush compares;
- ``__session_id__``: HMAC-SHA-256 of the session cookie under a key of
  ``SOLARA_STATE_SECRET_KEYS`` (the first when written, any when checked);
- ``__version__``: the schema tag, compared for exact equality;
- ``reactive:<key>``: an envelope ``01 | lp(key id) | lp(codec) | lp(payload) | mac``, where ``lp``
  is a 4-byte big-endian length and the bytes, the key id the first 8 bytes of SHA-256 of the
  secret, and the mac HMAC-SHA-256 under that secret of ``lp(key id) lp(kernel id) lp(field name)
  lp(codec) lp(payload)``, binding the envelope to its kernel and field;
- codec ``json``: UTF-8 JSON where the kinds JSON lacks are objects tagged
  ``{"__solara_type__": kind, "value": ...}`` (set, frozenset, datetime, date, time, uuid, decimal,
  bytes as base64), classes with a ``"type": "module:qualname"`` as well (enum, dataclass,
  pydantic), and tuples are lists; codec ``pickle``: a pickle (read only behind our pickle gate).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import hashlib
import hmac
import importlib.metadata
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .codec import MAX_DEPTH, compile_type
from .codec.nodes import key_segment
from .errors import CodecError, DecodeError, MalformedEnvelopeError, TamperedError, UnsupportedTypeError

if TYPE_CHECKING:  # the registry and specs are only read here (spec.py imports Solara)
    from .spec import PersistedSpec, Registry

__all__ = [
    "SOLARA_DEFAULT_PREFIX",
    "SOURCE",
    "Outcome",
    "SolaraEngineSettings",
    "SolaraSession",
    "installed_solara_version",
    "open_solara_envelope",
    "read_solara_session",
    "session_hmacs",
]

#: Solara's ``SOLARA_STATE_PREFIX`` default (ours is ``solara:``).
SOLARA_DEFAULT_PREFIX = "solara:state:"
#: The ``from=`` of the restore log line of a session read from Solara's engine.
SOURCE = "solara-engine"
FIELD_PREFIX = b"reactive:"
ENVELOPE_FORMAT = 1
MAC_SIZE = 32
KEY_ID_SIZE = 8
#: What ``take_solara_hash`` adds to its reply, instead of the values, for a session over budget.
OVER_BUDGET = b"__over_budget__"
_MARKER = "__solara_type__"

Outcome = Literal["restored", "miss", "foreign-session", "schema-mismatch", "bailout"]


# --------------------------------------------------------------------------- Solara's settings


def _solara_variable(environ: Mapping[str, str], name: str) -> str | None:
    """A setting as Solara's settings loader reads it: the name in any letter case, the value as it
    is (no stripping); if several spellings are set, the last one in the environment wins."""
    value = None
    for variable, raw in environ.items():
        if variable.upper() == name:
            value = raw
    return value


@functools.cache
def installed_solara_version() -> str | None:
    """The installed Solara's version from its package metadata (Solara itself is not imported)."""
    try:
        return importlib.metadata.version("solara")
    except importlib.metadata.PackageNotFoundError:
        return None


@attrs.frozen
class SolaraEngineSettings:
    """Where Solara's engine kept a kernel's state and which schema tag it compares, read as Solara reads them.

    The rule, for one shared ``SOLARA_STATE_PREFIX``: Solara's prefix is that variable (its name in any
    letter case, its value verbatim), else ``solara:state:``; ours is the same variable (exact name,
    stripped), else ``solara:``. With the variable set, both engines use one prefix: Solara's keys end
    in a kernel id (a 36-character UUID), ours in a 22-character session address, so none collide.
    The schema tag is ``SOLARA_STATE_SCHEMA_TAG`` (same reading), else ``solara-<installed version>``.
    """

    prefix: str = SOLARA_DEFAULT_PREFIX
    schema_tag: str = ""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, solara_version: str | None = None
    ) -> SolaraEngineSettings:
        """``solara_version`` defaults to the installed one (for the derived schema tag)."""
        env = os.environ if environ is None else environ
        prefix = _solara_variable(env, "SOLARA_STATE_PREFIX")
        tag = _solara_variable(env, "SOLARA_STATE_SCHEMA_TAG")
        if not tag:
            version = solara_version or installed_solara_version()
            tag = f"solara-{version}" if version else ""
        return cls(prefix=SOLARA_DEFAULT_PREFIX if prefix is None else prefix, schema_tag=tag)

    def hash_key(self, kernel_id: str) -> str:
        """The key of ``kernel_id``'s hash in Solara's format."""
        return self.prefix + kernel_id


# --------------------------------------------------------------------------- signatures


def _lp(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def session_hmacs(session_id: str, secrets: Sequence[str]) -> tuple[bytes, ...]:
    """The ``__session_id__`` Solara's engine would store for this cookie, under each secret."""
    cookie = session_id.encode("utf-8", "surrogatepass")
    return tuple(_hmac(secret, cookie) for secret in secrets)


def open_solara_envelope(
    data: bytes, *, kernel_id: str, field: bytes, secrets: Sequence[str]
) -> tuple[str, bytes]:
    """Verify one of Solara's envelopes for ``kernel_id`` and ``field``; its codec name and payload.

    ``MalformedEnvelopeError`` for broken framing, ``TamperedError`` when no secret of ``secrets``
    signed it for this kernel and field (tampered, replayed, or another fleet's secret).
    """
    name = field.decode("utf-8", "replace")
    if not data or data[0] != ENVELOPE_FORMAT:
        version = data[0] if data else "none"
        raise MalformedEnvelopeError(
            f"Solara envelope of {name!r} has format {version}, not {ENVELOPE_FORMAT} (Solara 1.58 to 1.64)"
        )
    parts: list[bytes] = []
    at = 1
    for what in ("key id", "codec", "payload"):
        length = int.from_bytes(data[at : at + 4], "big") if at + 4 <= len(data) else -1
        if length < 0 or at + 4 + length > len(data):
            raise MalformedEnvelopeError(f"Solara envelope of {name!r} is truncated in its {what}")
        parts.append(data[at + 4 : at + 4 + length])
        at += 4 + length
    key_id, codec, payload = parts
    mac = data[at:]
    if len(mac) != MAC_SIZE:
        raise MalformedEnvelopeError(
            f"Solara envelope of {name!r} ends in {len(mac)} bytes, not a {MAC_SIZE}-byte MAC"
        )
    try:
        codec_name = codec.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelopeError(
            f"Solara envelope of {name!r} names its codec in bytes that are not UTF-8"
        ) from None
    secret = next(
        (
            s
            for s in secrets
            if hmac.compare_digest(hashlib.sha256(s.encode("utf-8")).digest()[:KEY_ID_SIZE], key_id)
        ),
        None,
    )
    if secret is None:
        raise TamperedError(
            problem=f"Solara envelope of {name!r} was signed with a secret not in SOLARA_STATE_SECRET_KEYS",
            fix="give this instance the keys the Solara-engine instances used (extra keys only verify, the "
            "first signs)",
        )
    message = b"".join(map(_lp, (key_id, kernel_id.encode("utf-8"), field, codec, payload)))
    if not hmac.compare_digest(_hmac(secret, message), mac):
        raise TamperedError(
            f"Solara envelope of {name!r} fails its HMAC for kernel {kernel_id}: tampered, or replayed from "
            "another kernel or field"
        )
    return codec_name, payload


# --------------------------------------------------------------------------- payloads


class _Refused(Exception):
    """A stored value this reader will not turn into a value; ``path`` is where, inside it.

    It becomes a ``DecodeError`` with the same ``problem`` and ``fix``.
    """

    def __init__(self, path: str, problem: str, *, fix: str | None = None) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem
        self.fix = fix


def _from_decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(text) from None


def _from_base64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


#: Tagged kinds that are one string, and how that string is read.
_TEXT_KINDS: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": _from_decimal,
    "bytes": _from_base64,
}
_COLLECTION_KINDS: dict[str, Callable[[list[Any]], Any]] = {"set": set, "frozenset": frozenset}
_CLASS_KINDS = frozenset({"enum", "dataclass", "pydantic"})


def _member(node: dict[str, Any], name: str, kind: type, path: str, tag: str) -> Any:
    value = node.get(name)
    if type(value) is not kind:
        raise _Refused(path, f"a {tag!r} tag without a {kind.__name__} {name!r}")
    return value


class _Unpack:
    """One way of reading Solara's JSON tree: tagged kinds as Python values (``as_text=False``) or as
    the JSON text our typed codec reads (``as_text=True``); class tags refused, or unwrapped to their
    content (a typed codec then structures it by its annotation)."""

    def __init__(self, *, as_text: bool, unwrap_classes: bool) -> None:
        self.as_text = as_text
        self.unwrap_classes = unwrap_classes

    def __call__(self, node: Any, path: str = "", depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _Refused(path, f"nested deeper than {MAX_DEPTH} levels")
        kind = type(node)
        if kind is list:
            return [self(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node)]
        if kind is not dict:
            return node  # null, true/false, a number or a string
        if _MARKER not in node:
            return {name: self(item, path + key_segment(name), depth + 1) for name, item in node.items()}
        return self._tagged(node, path, depth)

    def _tagged(self, node: dict[str, Any], path: str, depth: int) -> Any:
        tag = node[_MARKER]
        if tag in _COLLECTION_KINDS:
            items = [
                self(item, f"{path}[{i}]", depth + 1)
                for i, item in enumerate(_member(node, "value", list, path, tag))
            ]
            if self.as_text:
                return items
            try:
                return _COLLECTION_KINDS[tag](items)
            except TypeError:
                raise _Refused(path, f"a {tag} holds an unhashable item") from None
        if tag in _TEXT_KINDS:
            text = _member(node, "value", str, path, tag)
            if self.as_text:
                return text
            try:
                return _TEXT_KINDS[tag](text)
            except (ValueError, binascii.Error):
                raise _Refused(path, f"{text[:64]!r} is not a stored {tag}") from None
        if tag in _CLASS_KINDS:
            name = _member(node, "type", str, path, tag)
            if not self.unwrap_classes:
                raise _Refused(
                    path,
                    f"holds an instance of {name} ({tag}): an untyped value names no class, so only one of the "
                    "default's own class can be restored",
                    fix="declare the key typed with @persisted",
                )
            if "value" not in node:
                raise _Refused(path, f"a {tag!r} tag without a 'value'")
            return self(node["value"], path, depth + 1)
        raise _Refused(path, f"an unknown Solara tag {tag!r}")


_PYTHON = _Unpack(as_text=False, unwrap_classes=False)  # untyped values: what persist=True can hold
_TYPED_JSON = _Unpack(as_text=True, unwrap_classes=True)  # our typed codec's JSON form
_MODEL_INPUT = _Unpack(as_text=False, unwrap_classes=True)  # a pydantic model's fields


def _class_name(tp: Any) -> str:
    return f"{getattr(tp, '__module__', '?')}:{getattr(tp, '__qualname__', repr(tp))}"


def _own_class(key: str, tp: Any, node: dict[str, Any]) -> Any:
    """A class-tagged value of an untyped spec: built only as the default's own class ``tp``."""
    tag, name = node[_MARKER], node.get("type")
    if name != _class_name(tp):
        raise _Refused(
            "",
            f"holds a {tag} stored as class {name!r}, but the default is a {_class_name(tp)}: only the "
            "default's own class is restored (no class named in stored data is imported)",
            fix="declare the key typed with @persisted",
        )
    if "value" not in node:
        raise _Refused("", f"a {tag!r} tag without a 'value'")
    content = node["value"]
    if tag == "enum" and isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(_PYTHON(content))
        except ValueError:
            raise _Refused("", f"{content!r} is not a member of {tp.__qualname__}") from None
    if tag == "dataclass" and isinstance(tp, type) and dataclasses.is_dataclass(tp) and type(content) is dict:
        try:
            typed = compile_type(tp, key=key)
        except UnsupportedTypeError:  # fields of no JSON form: each self-described, as ours stores them
            fields = {name: _PYTHON(item, "." + name) for name, item in content.items()}
            try:
                return tp(**fields)
            except (TypeError, ValueError) as exc:
                raise _Refused("", f"{tp.__qualname__}(...) refused the stored fields: {exc}") from None
        return typed.structure(_TYPED_JSON(content))
    base_model = getattr(sys.modules.get("pydantic"), "BaseModel", None)
    if tag == "pydantic" and base_model is not None and isinstance(tp, type) and issubclass(tp, base_model):
        try:
            return tp.model_validate(_MODEL_INPUT(content))  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic.ValidationError
            raise _Refused("", f"{tp.__qualname__} refused the stored fields: {exc}") from None
    raise _Refused("", f"a {tag} tag does not fit the default's class {_class_name(tp)}")


def _parse(key: str, payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise DecodeError(key, "", "Solara's JSON payload is not UTF-8") from None
    except RecursionError:
        raise DecodeError(key, "", "Solara's JSON payload is nested too deeply") from None
    except ValueError as exc:
        raise DecodeError(key, "", f"Solara's JSON payload is not valid JSON ({exc})") from None


def _decode(spec: PersistedSpec, key: str, codec: str, payload: bytes, allow_pickle: bool) -> Any:
    """The value of ``key`` for ``spec``, exactly as our codec for it would give it back."""
    if codec == "pickle":
        if spec.codec_name != "pickle" or not allow_pickle:
            raise DecodeError(
                key,
                "",
                "stored by Solara's engine with its pickle codec, which is read only for a key declared with "
                'serializer="pickle" (or codec="pickle") while SOLARA_STATE_ALLOW_PICKLE=true',
                fix="declare it so, or let the session start fresh",
            )
        return spec.type_codec.loads(payload)
    if codec != "json":
        raise DecodeError(key, "", f"stored with Solara codec {codec!r}, which is neither json nor pickle")
    tree = _parse(key, payload)
    type_codec = spec.type_codec
    try:
        if spec.codec_name == "json" and not spec.untyped:
            return type_codec.structure(_TYPED_JSON(tree))
        if type(tree) is dict and tree.get(_MARKER) in _CLASS_KINDS:
            value = _own_class(key, spec.type, tree)
        else:
            value = _PYTHON(tree)
            if spec.type is tuple and type(value) is list:  # Solara writes tuples as lists
                value = tuple(value)
    except _Refused as refused:
        raise DecodeError(key, refused.path, refused.problem, fix=refused.fix) from None
    return type_codec.loads(type_codec.dumps(value))


# --------------------------------------------------------------------------- a session


@attrs.frozen
class SolaraSession:
    """What ``read_solara_session`` made of one of Solara's hashes.

    ``outcome``: ``restored`` (``values`` by key, possibly none if no stored key is declared here),
    ``miss`` (no hash, or one holding no value), ``foreign-session`` (another browser's session),
    ``schema-mismatch`` (another schema tag: start fresh) or ``bailout`` (nothing restored: ``cause``
    ``hmac``, ``envelope``, ``manifest``, ``budget`` or ``codec``, ``key`` and ``problem`` say where).
    ``undeclared`` keys and ``oversize`` ones (key, envelope bytes, cap) were skipped; ``nbytes``
    are the envelope bytes read.
    """

    outcome: Outcome
    values: Mapping[str, Any] = attrs.field(factory=dict)
    cause: str | None = None
    key: str | None = None
    problem: str | None = None
    nbytes: int = 0
    undeclared: tuple[str, ...] = ()
    oversize: tuple[tuple[str, int, int], ...] = ()


def _bailout(cause: str, problem: str, key: str | None = None, **seen: Any) -> SolaraSession:
    return SolaraSession("bailout", cause=cause, key=key, problem=problem, **seen)


def read_solara_session(
    fields: Mapping[bytes, bytes] | None,
    *,
    kernel_id: str,
    session_id: str,
    secrets: Sequence[str],
    schema_tag: str,
    registry: Registry,
    max_value_bytes: int = 0,
    allow_pickle: bool = False,
) -> SolaraSession:
    """Turn one of Solara's hashes (as ``take_solara_hash`` returns it) into values for ``registry``'s specs.

    All or nothing: the cookie ``session_id`` must match ``__session_id__`` under one of ``secrets``,
    ``__version__`` must equal ``schema_tag``, every declared key's envelope must verify before any
    is decoded, and every value must fit its spec. Pure: no I/O, nothing logged.
    """
    if not fields:
        return SolaraSession("miss")
    stored_session = fields.get(b"__session_id__", b"")
    if not any(hmac.compare_digest(stored_session, mine) for mine in session_hmacs(session_id, secrets)):
        return SolaraSession("foreign-session")
    generation = fields.get(b"__generation__", b"")
    if not generation.removeprefix(b"-").isdigit() or len(generation) > 18:
        return _bailout("manifest", "its __generation__ is not an integer: the hash is not Solara's engine's")
    if fields.get(b"__version__") != schema_tag.encode("utf-8"):
        return SolaraSession("schema-mismatch")
    if OVER_BUDGET in fields:
        amount = fields[OVER_BUDGET].decode("ascii", "replace")
        return _bailout("budget", f"the session holds {amount}, over its budget (SOLARA_STATE_MAX_SESSION_*)")

    data = {name: value for name, value in fields.items() if not name.startswith(b"__")}
    if not data:
        return SolaraSession("miss")  # claimed by a Solara-engine connection, nothing written yet
    undeclared: list[str] = []
    oversize: list[tuple[str, int, int]] = []
    declared: list[tuple[bytes, str, PersistedSpec, bytes]] = []
    for name, envelope in data.items():
        if not name.startswith(FIELD_PREFIX):
            continue  # not a reactive: another namespace of Solara's, which it ignores as well
        try:
            key = name[len(FIELD_PREFIX) :].decode("utf-8")
        except UnicodeDecodeError:
            return _bailout("envelope", f"a field name of {len(name)} bytes is not UTF-8")
        spec = registry.resolve(key)
        if spec is None:
            undeclared.append(key)
            continue
        cap = max_value_bytes if spec.max_bytes is None else spec.max_bytes
        if cap and len(envelope) > cap:
            oversize.append((key, len(envelope), cap))
            continue
        declared.append((name, key, spec, envelope))
    seen: dict[str, Any] = {"undeclared": tuple(undeclared), "oversize": tuple(oversize)}

    opened: list[tuple[str, PersistedSpec, str, bytes]] = []
    for name, key, spec, envelope in declared:  # every signature first, then any decoding
        try:
            codec, payload = open_solara_envelope(envelope, kernel_id=kernel_id, field=name, secrets=secrets)
        except TamperedError as error:
            return _bailout("hmac", str(error), key, **seen)
        except MalformedEnvelopeError as error:
            return _bailout("envelope", str(error), key, **seen)
        opened.append((key, spec, codec, payload))
    values: dict[str, Any] = {}
    for key, spec, codec, payload in opened:
        try:
            values[key] = _decode(spec, key, codec, payload, allow_pickle)
        except CodecError as error:
            return _bailout("codec", str(error), key, **seen)
    nbytes = sum(len(envelope) for *_, envelope in declared)
    return SolaraSession("restored", values=values, nbytes=nbytes, **seen)
