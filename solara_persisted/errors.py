"""Every failure solara-persisted raises, in one place.

Each exception says what failed and how to fix it; callers catch the narrowest class they can
act on (a restore treats any ``EnvelopeError`` or ``CodecError`` as a bail-out, a writer treats
``BackendError`` as a retryable outage).
"""

from __future__ import annotations


class PersistedError(Exception):
    """Base class of every error raised by solara-persisted."""


class ConfigError(PersistedError, ValueError):
    """A ``SOLARA_STATE_*`` setting is invalid; the server must refuse to start."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem}. Fix: {fix}")


class SpecError(PersistedError, TypeError):
    """A persisted declaration is wrong; raised at declaration (import) time."""

    def __init__(self, site: str, problem: str, fix: str) -> None:
        self.site = site
        self.problem = problem
        self.fix = fix
        super().__init__(f"{site}: {problem}. Fix: {fix}")


class DuplicateKeyError(SpecError):
    """Two different definitions claim the same persisted key."""


class UnsupportedTypeError(SpecError):
    """The declared type cannot be represented by the JSON codec."""


class InvalidIdentifierError(PersistedError, ValueError):
    """A kernel id or persisted key cannot safely become part of a backend key."""


class CodecError(PersistedError):
    """A value could not be turned into bytes, or bytes back into a value."""

    def __init__(self, key: str, path: str, problem: str) -> None:
        self.key = key
        self.path = path
        self.problem = problem
        where = f"{key}{path}" if path else key
        super().__init__(f"persisted key {where}: {problem}")


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


class MigrationError(DecodeError):
    """A value stored at another spec version failed its migration chain or the declared schema after it.

    ``cause`` is what the restore log line reports for the bail-out.
    """

    cause = "migration"

    def __init__(self, key: str, version: int, path: str, problem: str) -> None:
        super().__init__(key, path, problem)
        self.version = version
        self.args = (f"persisted key {key} stored at version {version}, at {path or 'the root'}: {problem}",)


class OversizeError(EncodeError):
    """A value's encoded payload is over the size cap; refused while encoding, before it is built in full.

    ``size`` is the payload's length in bytes when ``exact``, else a lower bound (the bytes known
    when encoding stopped); ``limit`` is the cap it exceeded.
    """

    def __init__(self, key: str, path: str, size: int, limit: int, *, exact: bool) -> None:
        self.size = size
        self.limit = limit
        self.exact = exact
        amount = f"{size} bytes" if exact else f"at least {size} bytes"
        super().__init__(key, path, f"the encoded value is {amount}, over the limit of {limit} bytes")
