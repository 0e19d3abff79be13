"""The ``SOLARA_STATE_*`` settings: parsed once from the environment, validated before start-up.

A misconfigured fleet silently loses sessions, so every problem the server can detect on its
own refuses start-up with one message naming the variable and the fix; softer risks (a session
cookie readable by JavaScript) are returned as warnings for the caller to log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import attrs

from .errors import ConfigError

BACKENDS = ("memory", "redis")
URL_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
# Values people paste from docs or leave from templates; never accepted as a real secret.
PLACEHOLDER_SECRETS = frozenset(
    {"change me", "changeme", "change-me", "secret", "paste-the-generated-secret-here", "your-secret-here"}
)
MIN_SECRET_LENGTH = 16

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")  # the password of a URL, never echoed in an error
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_duration(name: str, raw: str) -> float:
    """``"300ms"``, ``"5m"``, ``"24h"`` or plain seconds -> seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(
            name, f"{raw!r} is not a duration", "write a number with a unit: 300ms, 30s, 5m, 24h or 7d"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(name: str, raw: str) -> int:
    """``"1000000"``, ``"1MB"`` or ``"5MiB"`` -> bytes."""
    match = _SIZE.match(raw)
    if not match:
        raise ConfigError(
            name,
            f"{raw!r} is not a byte size",
            "write a whole number of bytes, or with a unit: 512kB, 1MB, 5MiB",
        )
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"{raw!r} is not a boolean", "write true or false")


def parse_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number", f"write an integer >= {minimum}") from None
    if value < minimum:
        raise ConfigError(name, f"{value} is below the minimum {minimum}", f"write an integer >= {minimum}")
    return value


def parse_fraction(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(
            name, f"{raw!r} is not a number", "write a fraction between 0 and 1, e.g. 0.5"
        ) from None
    if not 0.0 < value <= 1.0:
        raise ConfigError(name, f"{value} is outside (0, 1]", "write a fraction between 0 and 1, e.g. 0.5")
    return value


@attrs.frozen(kw_only=True)
class Settings:
    """Every setting, with the operations guide's defaults. Durations are seconds, sizes bytes."""

    backend: str = ""
    url: str = ""
    secret_keys: tuple[str, ...] = ()
    allow_pickle: bool = False
    ttl: float = 24 * 3600.0
    orphan_cull_timeout: float = 300.0
    prefix: str = "solara:"  # + kernel id stays <= 44 chars: one smaller Redis allocation per session
    flush_debounce: float = 0.3
    connect_timeout: float = 0.3
    breaker_failures: int = 3
    breaker_window: float = 30.0
    schema_tag: str = ""
    warn_value_bytes: int = 1_000_000
    max_value_bytes: int = 5_000_000
    bailout_storm_threshold: float = 0.5
    auto_remount: bool | None = None
    test_eviction: bool = False
    session_http_only: bool = False
    resourcez_token: str = ""
    production: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.backend)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once; raises ``ConfigError`` on the first malformed value."""
        env = os.environ if environ is None else environ

        def get(suffix: str) -> str | None:
            value = env.get(f"SOLARA_STATE_{suffix}")
            return None if value is None else value.strip()

        kwargs: dict[str, object] = {}
        if (raw := get("BACKEND")) is not None:
            kwargs["backend"] = raw.lower()
        if (raw := get("URL")) is not None:
            kwargs["url"] = raw
        if (raw := get("SECRET_KEYS")) is not None:
            kwargs["secret_keys"] = tuple(part.strip() for part in raw.split(",") if part.strip())
        if (raw := get("ALLOW_PICKLE")) is not None:
            kwargs["allow_pickle"] = parse_bool("SOLARA_STATE_ALLOW_PICKLE", raw)
        if raw := get("TTL"):
            kwargs["ttl"] = parse_duration("SOLARA_STATE_TTL", raw)
        elif raw := env.get("SOLARA_KERNEL_CULL_TIMEOUT"):
            kwargs["ttl"] = parse_duration("SOLARA_KERNEL_CULL_TIMEOUT", raw)
        for suffix in ("ORPHAN_CULL_TIMEOUT", "FLUSH_DEBOUNCE", "CONNECT_TIMEOUT", "BREAKER_WINDOW"):
            if raw := get(suffix):
                kwargs[suffix.lower()] = parse_duration(f"SOLARA_STATE_{suffix}", raw)
        if (raw := get("PREFIX")) is not None:
            kwargs["prefix"] = raw
        if raw := get("BREAKER_FAILURES"):
            kwargs["breaker_failures"] = parse_int("SOLARA_STATE_BREAKER_FAILURES", raw, minimum=1)
        if (raw := get("SCHEMA_TAG")) is not None:
            kwargs["schema_tag"] = raw
        for suffix in ("WARN_VALUE_BYTES", "MAX_VALUE_BYTES"):
            if raw := get(suffix):
                kwargs[suffix.lower()] = parse_size(f"SOLARA_STATE_{suffix}", raw)
        if raw := get("BAILOUT_STORM_THRESHOLD"):
            kwargs["bailout_storm_threshold"] = parse_fraction("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", raw)
        if raw := get("AUTO_REMOUNT"):
            kwargs["auto_remount"] = parse_bool("SOLARA_STATE_AUTO_REMOUNT", raw)
        if raw := get("TEST_EVICTION"):
            kwargs["test_eviction"] = parse_bool("SOLARA_STATE_TEST_EVICTION", raw)
        if raw := env.get("SOLARA_SESSION_HTTP_ONLY"):
            kwargs["session_http_only"] = parse_bool("SOLARA_SESSION_HTTP_ONLY", raw)
        if (raw := env.get("SOLARA_RESOURCEZ_TOKEN")) is not None:
            kwargs["resourcez_token"] = raw.strip()
        kwargs["production"] = env.get("SOLARA_MODE", "production").strip().lower() == "production"
        return cls(**kwargs)  # type: ignore[arg-type]

    def validate(self) -> list[str]:
        """Raise ``ConfigError`` on a configuration the server must not start with; return warnings."""
        has_real_secrets = bool(self.secret_keys) and not any(_is_weak(key) for key in self.secret_keys)
        if self.allow_pickle and not has_real_secrets:
            raise ConfigError(
                "SOLARA_STATE_ALLOW_PICKLE",
                "pickle is allowed but SOLARA_STATE_SECRET_KEYS is empty or a default, so anyone who can "
                "write to the backend could run code on this server",
                'set SOLARA_STATE_SECRET_KEYS to a generated secret (python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"), or unset SOLARA_STATE_ALLOW_PICKLE',
            )
        if not self.backend:
            return []
        if self.backend not in BACKENDS:
            raise ConfigError(
                "SOLARA_STATE_BACKEND",
                f"unknown backend {self.backend!r}",
                f"use one of: {', '.join(BACKENDS)}",
            )
        if not self.secret_keys:
            raise ConfigError(
                "SOLARA_STATE_SECRET_KEYS",
                "a state backend is enabled but no secret key is set",
                'generate one with python -c "import secrets; print(secrets.token_urlsafe(32))" and give '
                "every instance the same value",
            )
        for key in self.secret_keys:
            if key.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    "SOLARA_STATE_SECRET_KEYS",
                    f"{key!r} is a placeholder, not a secret",
                    'replace it with a generated one: python -c "import secrets; print(secrets.token_urlsafe(32))"',
                )
            if len(key) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    "SOLARA_STATE_SECRET_KEYS",
                    f"a key of {len(key)} characters is too short to resist guessing (minimum {MIN_SECRET_LENGTH})",
                    'generate one with python -c "import secrets; print(secrets.token_urlsafe(32))"',
                )
        if self.backend == "redis":
            _validate_url(self.url)
        if self.flush_debounce <= 0:
            raise ConfigError("SOLARA_STATE_FLUSH_DEBOUNCE", "must be above zero", "use e.g. 300ms")
        if self.connect_timeout <= 0:
            raise ConfigError("SOLARA_STATE_CONNECT_TIMEOUT", "must be above zero", "use e.g. 300ms")
        if self.ttl <= 0:
            raise ConfigError("SOLARA_STATE_TTL", "must be above zero", "use e.g. 24h")
        if self.orphan_cull_timeout <= 0:
            raise ConfigError("SOLARA_STATE_ORPHAN_CULL_TIMEOUT", "must be above zero", "use e.g. 5m")
        if self.breaker_window <= 0:
            raise ConfigError("SOLARA_STATE_BREAKER_WINDOW", "must be above zero", "use e.g. 30s")
        if self.max_value_bytes and self.warn_value_bytes > self.max_value_bytes:
            raise ConfigError(
                "SOLARA_STATE_WARN_VALUE_BYTES",
                f"the warning threshold {self.warn_value_bytes} is above the hard cap {self.max_value_bytes}",
                "lower SOLARA_STATE_WARN_VALUE_BYTES or raise SOLARA_STATE_MAX_VALUE_BYTES (0 disables the cap)",
            )
        if self.test_eviction and self.production:
            raise ConfigError(
                "SOLARA_STATE_TEST_EVICTION",
                "simulated failover is a development tool and is refused in production mode",
                "unset it, or run with SOLARA_MODE=development",
            )
        warnings = []
        if not self.session_http_only:
            warnings.append(
                "SOLARA_SESSION_HTTP_ONLY is off while state persistence is on: the session cookie is a "
                "state-recovery credential, set SOLARA_SESSION_HTTP_ONLY=true to keep it out of JavaScript"
            )
        return warnings


def _is_weak(key: str) -> bool:
    return key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LENGTH


def _redact(url: str) -> str:
    return _PASSWORD.sub(r"\1***@", url)


def _validate_url(url: str) -> None:
    if not url:
        raise ConfigError(
            "SOLARA_STATE_URL",
            "the redis backend needs a URL",
            "set it, e.g. SOLARA_STATE_URL=redis://localhost:6379/0",
        )
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in URL_SCHEMES:
        raise ConfigError(
            "SOLARA_STATE_URL",
            f"{_redact(url)!r} is not a supported URL",
            f"use one of the schemes {', '.join(s + '://' for s in URL_SCHEMES)}",
        )
    if not rest:
        raise ConfigError(
            "SOLARA_STATE_URL", f"{url!r} names no host or socket path", "e.g. redis://localhost:6379/0"
        )
