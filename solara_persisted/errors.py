"""Every failure solara-persisted raises, in one place.

Every error is a ``problem`` (what failed) and a ``fix`` (what to do about it), rendered as one
line, ``problem. Fix: fix``. A class that knows what the error is about puts that first:
``setting: problem. Fix: fix``, ``site: ...``, ``persisted key k.path: ...``. ``fix`` is ``None``
only where no action helps (a value that fails to decode is simply not restored); the message is
then the problem alone. Callers catch the narrowest class they can act on (a restore treats any
``EnvelopeError`` or ``CodecError`` as a bail-out, a writer treats ``BackendError`` as a retryable
outage). The hierarchy, and when each class is raised::

    PersistedError                  never itself; catch it for anything from solara-persisted
    ├── ConfigError                 a SOLARA_STATE_* setting is invalid; start-up is refused (also ValueError)
    ├── SpecError                   a declaration is wrong, at declaration (import) time (also TypeError)
    │   ├── DuplicateKeyError       two different declarations claim the same persisted key
    │   └── UnsupportedTypeError    the declared type has no JSON form
    ├── InvalidIdentifierError      a kernel id, address or key is unfit for a backend key (also ValueError)
    ├── CodecError                  a value could not become bytes, or bytes a value
    │   ├── EncodeError             a value does not match its declared type (on write only)
    │   │   └── OversizeError       a value's encoded payload is over its size cap (on write)
    │   └── DecodeError             stored bytes do not structure into the declared type (bail-out)
    │       └── MigrationError      a value stored at another version fails its migration chain
    ├── EnvelopeError               a stored envelope cannot be trusted; nothing in it was decoded
    │   ├── TamperedError           its HMAC matches no key of the ring (tampered, replayed, foreign)
    │   └── MalformedEnvelopeError  its framing is broken (truncated, unknown format or codec)
    ├── BackendError                a backend call failed or timed out (counted, retried later)
    │   └── BreakerOpen             the circuit breaker refused the call; never leaves the engine
    ├── SnapshotBusy                a kernel is mid-event, its values not yet one state; never leaves the writer
    └── ToolingError                a schema command (codegen, check, golden) cannot run; the CLI's refusal
        ├── AppLoadError            an app module is missing, not a module, or raises while imported
        └── SchemaFileError         a committed schema file is not one codegen wrote
"""

from __future__ import annotations


class PersistedError(Exception):
    """Base class of every error raised by solara-persisted: a ``problem`` and its ``fix``.

    ``str(error)`` is ``"problem. Fix: fix"`` (just ``"problem"`` when ``fix`` is ``None``), after
    the subclass's context and ``": "`` for a class that has one (``_context``).
    """

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(self._render())

    def _context(self) -> str | None:
        """What the error is about, written before the problem; ``None``: nothing."""
        return None

    def _render(self) -> str:
        text = self.problem if self.fix is None else f"{self.problem}. Fix: {self.fix}"
        context = self._context()
        return text if context is None else f"{context}: {text}"


class ConfigError(PersistedError, ValueError):
    """A ``SOLARA_STATE_*`` setting is invalid; the server must refuse to start."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        super().__init__(problem, fix=fix)

    def _context(self) -> str:
        return self.setting


class SpecError(PersistedError, TypeError):
    """A persisted declaration is wrong; raised at declaration (import) time."""

    def __init__(self, site: str, problem: str, fix: str) -> None:
        self.site = site
        super().__init__(problem, fix=fix)

    def _context(self) -> str:
        return self.site


class DuplicateKeyError(SpecError):
    """Two different definitions claim the same persisted key."""


class UnsupportedTypeError(SpecError):
    """The declared type cannot be represented by the JSON codec."""


class InvalidIdentifierError(PersistedError, ValueError):
    """A kernel id or persisted key cannot safely become part of a backend key."""


class CodecError(PersistedError):
    """A value could not be turned into bytes, or bytes back into a value.

    ``key`` is the persisted key, ``path`` the failing part inside its value (``.items[0]``, or
    ``""`` for the whole value).
    """

    def __init__(self, key: str, path: str, problem: str, *, fix: str | None = None) -> None:
        self.key = key
        self.path = path
        super().__init__(problem, fix=fix)

    def _context(self) -> str:
        where = f"{self.key}{self.path}" if self.path else self.key
        return f"persisted key {where}"


class EncodeError(CodecError):
    """A value does not match its declared type (raised on write, never on restore)."""


class DecodeError(CodecError):
    """Stored bytes do not structure into the declared type (a restore bails out)."""


class EnvelopeError(PersistedError):
    """A stored envelope cannot be trusted; nothing in it was decoded."""


class TamperedError(EnvelopeError):
    """The HMAC matched no key in the ring: tampered, replayed, or signed with a foreign key."""


class MalformedEnvelopeError(EnvelopeError):
    """The envelope's framing is broken (truncated, unknown format version or codec)."""


class BackendError(PersistedError):
    """A backend call failed or timed out; the caller counts it and retries later."""


class SnapshotBusy(PersistedError):
    """A kernel is in the middle of an event, so its values are not yet one consistent state: the
    writer retries shortly rather than store half of what one event set. Never leaves the writer."""


class BreakerOpen(BackendError):
    """The circuit breaker refused the call: nothing was sent (degraded mode). Never leaves the engine."""


class MigrationError(DecodeError):
    """A value stored at another spec version failed its migration chain or the declared schema after it.

    ``cause`` is what the restore log line reports for the bail-out.
    """

    cause = "migration"

    def __init__(self, key: str, version: int, path: str, problem: str, *, fix: str | None = None) -> None:
        self.version = version
        super().__init__(key, path, problem, fix=fix)

    def _context(self) -> str:
        return f"persisted key {self.key} stored at version {self.version}, at {self.path or 'the root'}"


class OversizeError(EncodeError):
    """A value's encoded payload is over the size cap; refused while encoding, before it is built in full.

    ``size`` is the payload's length in bytes when ``exact``, else a lower bound (the bytes known
    when encoding stopped); ``limit`` is the cap it exceeded.
    """

    def __init__(
        self, key: str, path: str, size: int, limit: int, *, exact: bool, fix: str | None = None
    ) -> None:
        self.size = size
        self.limit = limit
        self.exact = exact
        amount = f"{size} bytes" if exact else f"at least {size} bytes"
        problem = f"the encoded value is {amount}, over the limit of {limit} bytes"
        super().__init__(key, path, problem, fix=fix)


class ToolingError(PersistedError):
    """Why a schema command cannot run, as one line: the problem, then the fix.

    Raised by the schema tooling (``solara_persisted.schema``), which only the CLI and tests call;
    the CLI prints it as its one-line refusal instead of a traceback: the person running ``check``
    in CI needs the file, the line and the cause, not importlib's or json's frames. Whitespace in
    ``problem`` (an app's multi-line exception) is collapsed to keep it one line.
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(" ".join(problem.split()), fix=fix)


class AppLoadError(ToolingError):
    """An app module that cannot be loaded: missing, not a module, or raising while it is imported."""


class SchemaFileError(ToolingError):
    """A committed schema file that is not one ``codegen`` wrote."""


class ProjectFileError(ToolingError):
    """A ``[tool.solara-persisted]`` table that cannot be read: bad TOML, an unknown key, a wrong type."""
