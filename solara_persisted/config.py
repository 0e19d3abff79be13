"""The ``SOLARA_STATE_*`` settings: parsed once from the environment, validated before start-up.

A misconfigured fleet silently loses sessions, so every problem the server can detect on its
own refuses start-up with one message naming the variable and the fix; softer risks (a session
cookie readable by JavaScript) are returned as warnings for the caller to log.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import string
from collections.abc import Mapping

import attrs

from .errors import ConfigError
from .parsing import parse_bool, parse_duration, parse_fraction, parse_int, parse_size

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
# By ``secret_bits``, a generous estimate: generated tokens score over 100, typed patterns far less.
MIN_SECRET_BITS = 64
# What guessers try first; in a secret each counts as one symbol, however long (leetspeak undone).
COMMON_WORDS = (
    "password",
    "passwd",
    "secret",
    "changeme",
    "change",
    "admin",
    "qwerty",
    "azerty",
    "letmein",
    "welcome",
    "default",
    "example",
    "master",
    "login",
    "iloveyou",
    "solara",
    "redis",
    "token",
)
_LEET = str.maketrans("0134579@$!", "oieastgasi")
# Longest first, in a lookahead: every position where a word starts, with the longest word there.
_COMMON_WORD = re.compile(
    "(?=({}))".format("|".join(map(re.escape, sorted(COMMON_WORDS, key=len, reverse=True))))
)
_CHARACTER_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
_OTHER_CHARACTERS = 33  # ASCII punctuation and space; anything non-alphanumeric counts as one of them
GENERATE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

# Solara 1.64 compares SOLARA_MODE verbatim (``settings.main.mode == "production"``, no strip, no
# lower-casing), so any other spelling runs Solara's development paths: accept exactly these.
MODES = ("production", "development")

MAX_PREFIX_LENGTH = 64
_PREFIX_GLOB = frozenset("*?[]\\")

# field: (variable, upper bound in seconds, the bound as written, a sane example). Above its bound a
# duration is a typo (a unit left off) or a way to pin memory and stall requests, never a plan.
DURATION_BOUNDS = {
    "ttl": ("SOLARA_STATE_TTL", 30 * 86400.0, "30d", "24h"),
    "orphan_cull_timeout": ("SOLARA_STATE_ORPHAN_CULL_TIMEOUT", 7 * 86400.0, "7d", "5m"),
    "flush_debounce": ("SOLARA_STATE_FLUSH_DEBOUNCE", 60.0, "60s", "300ms"),
    "connect_timeout": ("SOLARA_STATE_CONNECT_TIMEOUT", 30.0, "30s", "300ms"),
    "breaker_window": ("SOLARA_STATE_BREAKER_WINDOW", 3600.0, "1h", "30s"),
}
MAX_SESSION_KEYS_LIMIT = 1_000_000  # far above any real page: more is a typo, not a budget

# Every SOLARA_STATE_* variable we read; anything else with the prefix is almost always a typo.
KNOWN_SETTINGS = (
    "SOLARA_STATE_BACKEND",
    "SOLARA_STATE_URL",
    "SOLARA_STATE_SECRET_KEYS",
    "SOLARA_STATE_ALLOW_PICKLE",
    "SOLARA_STATE_TTL",
    "SOLARA_STATE_ORPHAN_CULL_TIMEOUT",
    "SOLARA_STATE_PREFIX",
    "SOLARA_STATE_FLUSH_DEBOUNCE",
    "SOLARA_STATE_CONNECT_TIMEOUT",
    "SOLARA_STATE_BREAKER_FAILURES",
    "SOLARA_STATE_BREAKER_WINDOW",
    "SOLARA_STATE_SCHEMA_TAG",
    "SOLARA_STATE_WARN_VALUE_BYTES",
    "SOLARA_STATE_MAX_VALUE_BYTES",
    "SOLARA_STATE_MAX_SESSION_BYTES",
    "SOLARA_STATE_MAX_SESSION_KEYS",
    "SOLARA_STATE_BAILOUT_STORM_THRESHOLD",
    "SOLARA_STATE_AUTO_REMOUNT",
    "SOLARA_STATE_TEST_EVICTION",
    "SOLARA_STATE_METRICS",
    "SOLARA_STATE_DRAIN_TOKEN",
)
_STATE_PREFIX = "SOLARA_STATE_"

_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")  # the password of a URL, never echoed in an error


@attrs.frozen(kw_only=True)
class Settings:
    """Every setting, with the operations guide's defaults. Durations are seconds, sizes bytes."""

    backend: str = ""
    url: str = ""
    secret_keys: tuple[str, ...] = ()
    allow_pickle: bool = False
    ttl: float = 24 * 3600.0
    orphan_cull_timeout: float = 300.0
    prefix: str = "solara:"  # + 22-char session address: keys up to 30 chars fit a 32-byte allocation
    flush_debounce: float = 0.3
    connect_timeout: float = 0.3
    breaker_failures: int = 3
    breaker_window: float = 30.0
    schema_tag: str = ""
    warn_value_bytes: int = 1_000_000
    max_value_bytes: int = 5_000_000
    max_session_bytes: int = 10_000_000  # all envelopes of one kernel's hash; 0: no budget
    max_session_keys: int = 1000  # persisted keys in one kernel's hash
    bailout_storm_threshold: float = 0.5
    auto_remount: bool | None = None
    test_eviction: bool = False
    session_http_only: bool = False
    resourcez_token: str = ""
    metrics: bool = True  # /metrics while persistence is on
    drain_token: str = ""  # the pre-stop drain's bearer token; unset: no drain endpoint
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
        for suffix in ("WARN_VALUE_BYTES", "MAX_VALUE_BYTES", "MAX_SESSION_BYTES"):
            if raw := get(suffix):
                kwargs[suffix.lower()] = parse_size(f"SOLARA_STATE_{suffix}", raw)
        if raw := get("MAX_SESSION_KEYS"):
            kwargs["max_session_keys"] = parse_int("SOLARA_STATE_MAX_SESSION_KEYS", raw, minimum=1)
        if raw := get("BAILOUT_STORM_THRESHOLD"):
            kwargs["bailout_storm_threshold"] = parse_fraction("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", raw)
        if raw := get("AUTO_REMOUNT"):
            kwargs["auto_remount"] = parse_bool("SOLARA_STATE_AUTO_REMOUNT", raw)
        if raw := get("TEST_EVICTION"):
            kwargs["test_eviction"] = parse_bool("SOLARA_STATE_TEST_EVICTION", raw)
        if raw := get("METRICS"):
            kwargs["metrics"] = parse_bool("SOLARA_STATE_METRICS", raw)
        if (raw := get("DRAIN_TOKEN")) is not None:
            kwargs["drain_token"] = raw
        if raw := env.get("SOLARA_SESSION_HTTP_ONLY"):
            kwargs["session_http_only"] = parse_bool("SOLARA_SESSION_HTTP_ONLY", raw)
        if (raw := env.get("SOLARA_RESOURCEZ_TOKEN")) is not None:
            kwargs["resourcez_token"] = raw.strip()
        kwargs["production"] = parse_mode(env.get("SOLARA_MODE"))
        return cls(**kwargs)  # type: ignore[arg-type]

    def validate(self) -> list[str]:
        """Raise ``ConfigError`` on a configuration the server must not start with; return warnings."""
        if self.allow_pickle and (not self.secret_keys or any(map(_is_weak, self.secret_keys))):
            raise ConfigError(
                "SOLARA_STATE_ALLOW_PICKLE",
                "pickle is allowed but SOLARA_STATE_SECRET_KEYS is empty, a default or guessable, so anyone "
                "who can write to the backend could run code on this server",
                f"set SOLARA_STATE_SECRET_KEYS to a generated secret ({GENERATE_SECRET}), "
                "or unset SOLARA_STATE_ALLOW_PICKLE",
            )
        # Solara's setting, not ours, and it guards /resourcez whether or not persistence is on.
        _validate_token("SOLARA_RESOURCEZ_TOKEN", self.resourcez_token, "it unlocks raw key names")
        if not self.backend:
            return []
        if self.backend not in BACKENDS:
            raise ConfigError(
                "SOLARA_STATE_BACKEND",
                f"unknown backend {self.backend!r}",
                _did_you_mean(self.backend, BACKENDS, f"use one of: {', '.join(BACKENDS)}"),
            )
        if not self.secret_keys:
            raise ConfigError(
                "SOLARA_STATE_SECRET_KEYS",
                "a state backend is enabled but no secret key is set",
                f"generate one with {GENERATE_SECRET} and give every instance the same value",
            )
        for position, key in enumerate(self.secret_keys, start=1):
            if key.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    "SOLARA_STATE_SECRET_KEYS",
                    f"{key!r} is a placeholder, not a secret",
                    f"replace it with a generated one: {GENERATE_SECRET}",
                )
            if len(key) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    "SOLARA_STATE_SECRET_KEYS",
                    f"a key of {len(key)} characters is too short to resist guessing (minimum {MIN_SECRET_LENGTH})",
                    f"generate one with {GENERATE_SECRET}",
                )
            if (bits := secret_bits(key)) < MIN_SECRET_BITS:
                # The key itself is never echoed: it may be the one real key of the ring.
                raise ConfigError(
                    "SOLARA_STATE_SECRET_KEYS",
                    f"key {position} of {len(self.secret_keys)} is guessable: it repeats, counts or spells a "
                    f"common word (about {bits:.0f} bits, minimum {MIN_SECRET_BITS})",
                    f"a generated token is the supported form: {GENERATE_SECRET}",
                )
        _validate_token("SOLARA_STATE_DRAIN_TOKEN", self.drain_token, "it makes this instance hand off every session")
        if self.backend == "redis":
            _validate_url(self.url)
        _validate_prefix(self.prefix)
        for field, (variable, bound, bound_text, example) in DURATION_BOUNDS.items():
            _validate_duration(variable, getattr(self, field), bound, bound_text, example)
        if self.max_session_bytes < 0:
            raise ConfigError(
                "SOLARA_STATE_MAX_SESSION_BYTES",
                f"{self.max_session_bytes} is below zero",
                "write a byte size such as 10MB, or 0 for no budget",
            )
        if not 1 <= self.max_session_keys <= MAX_SESSION_KEYS_LIMIT:
            raise ConfigError(
                "SOLARA_STATE_MAX_SESSION_KEYS",
                f"{self.max_session_keys} is outside 1 to {MAX_SESSION_KEYS_LIMIT}",
                "write a whole number of keys such as 1000",
            )
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


def parse_mode(raw: str | None) -> bool:
    """``SOLARA_MODE`` -> production? Unset is production; a value Solara would not honour is refused."""
    if raw is None:
        return True
    if raw not in MODES:
        raise ConfigError(
            "SOLARA_MODE",
            f"{raw!r} is not a mode: Solara compares the value verbatim and treats anything but "
            "'production' as development (raw key names on /resourcez, test eviction allowed)",
            "write exactly production or development (lower case, no spaces); unset means production",
        )
    return raw == "production"


def secret_bits(secret: str) -> float:
    """A simple, deliberately generous estimate of how many bits a guesser must search.

    Read left to right, the secret is a sequence of symbols: a common word (``COMMON_WORDS``,
    leetspeak undone), a run of three or more characters stepping by -1, 0 or +1 (``aaaa``,
    ``abcd``, ``4321``) or a repeat of three or more earlier characters each count as ONE symbol,
    every other character as one. Bits = symbols x log2(alphabet), the alphabet being the classes
    present: 26 lower, 26 upper, 10 digits, 33 others. Generous on purpose: it exists to refuse the
    strings people type, never a generated token (``token_hex(16)``, the smallest, averages 165).
    """
    alphabet = sum(len(chars) for chars in _CHARACTER_CLASSES if any(c in chars for c in secret))
    if any(not (c.isascii() and c.isalnum()) for c in secret):
        alphabet += _OTHER_CHARACTERS
    words = {m.start(): len(m.group(1)) for m in _COMMON_WORD.finditer(secret.lower().translate(_LEET))}
    symbols, i = 0, 0
    while i < len(secret):
        symbols += 1
        i += max(1, words.get(i, 0), _run_length(secret, i), _repeat_length(secret, i))
    return symbols * math.log2(alphabet) if alphabet > 1 else 0.0


def _run_length(text: str, i: int) -> int:
    """Length of the run ``aaa``/``abc``/``cba`` starting at ``i``; 0 below three characters."""
    if i + 2 >= len(text) or abs(step := ord(text[i + 1]) - ord(text[i])) > 1:
        return 0
    end = i + 1
    while end + 1 < len(text) and ord(text[end + 1]) - ord(text[end]) == step:
        end += 1
    return end - i + 1 if end - i >= 2 else 0


def _repeat_length(text: str, i: int) -> int:
    """Longest match (three or more) of the text at ``i`` with text starting earlier, overlap allowed."""
    trigram, best = text[i : i + 3], 0
    if len(trigram) < 3:
        return 0
    start = text.find(trigram, 0, i + 2)
    while start != -1:
        length = 3
        while i + length < len(text) and text[start + length] == text[i + length]:
            length += 1
        best = max(best, length)
        start = text.find(trigram, start + 1, i + 2)
    return best


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``SOLARA_STATE_*`` variable we do not read: almost always a typo of one we do."""
    env = os.environ if environ is None else environ
    known_suffixes = [name.removeprefix(_STATE_PREFIX) for name in KNOWN_SETTINGS]
    warnings = []
    for name in sorted(env):
        if not name.upper().startswith(_STATE_PREFIX) or name in KNOWN_SETTINGS:
            continue
        if name.upper() in KNOWN_SETTINGS:
            hint = f"names are case-sensitive; did you mean {name.upper()}?"
        elif close := difflib.get_close_matches(name.upper()[len(_STATE_PREFIX) :], known_suffixes, n=1):
            hint = f"did you mean {_STATE_PREFIX}{close[0]}?"
        else:
            hint = "the settings are listed in the operations guide (docs/operations.md)"
        warnings.append(f"{name} is not a setting solara-persisted knows; {hint}")
    return warnings


def _did_you_mean(word: str, choices: tuple[str, ...], fix: str, suffix: str = "") -> str:
    """``fix``, led by ``did you mean redis?`` when ``word`` is a near miss such as ``reddis``."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]}{suffix}? {fix[0].upper()}{fix[1:]}" if close else fix


def _is_weak(key: str) -> bool:
    return (
        key.lower() in PLACEHOLDER_SECRETS
        or len(key) < MIN_SECRET_LENGTH
        or secret_bits(key) < MIN_SECRET_BITS
    )


def _validate_token(variable: str, token: str, power: str) -> None:
    """A bearer token (``power``: what it lets its holder do) must resist guessing; unset is allowed."""
    if not token:
        return  # no token: nothing it would unlock is served
    if token.lower() in PLACEHOLDER_SECRETS:
        raise ConfigError(variable, f"{token!r} is a placeholder, not a token", f"generate one: {GENERATE_SECRET}")
    bits = secret_bits(token)
    if len(token) < MIN_SECRET_LENGTH or bits < MIN_SECRET_BITS:
        raise ConfigError(
            variable,
            f"a token of {len(token)} characters (about {bits:.0f} bits) is guessable, and {power} "
            f"(minimum {MIN_SECRET_LENGTH} characters and {MIN_SECRET_BITS} bits)",
            f"a generated token is the supported form: {GENERATE_SECRET}; or unset it for no token",
        )


def _validate_prefix(prefix: str) -> None:
    """The prefix is all that separates our hashes from every other key in a shared database."""
    fix = "use letters, digits and : - _ . only, e.g. SOLARA_STATE_PREFIX=app1: (unset it for solara:)"
    if not prefix:
        raise ConfigError(
            "SOLARA_STATE_PREFIX",
            "it is empty or only whitespace, so a kernel id alone would name keys anywhere in the database",
            fix,
        )
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise ConfigError(
            "SOLARA_STATE_PREFIX", f"{len(prefix)} characters is above the maximum {MAX_PREFIX_LENGTH}", fix
        )
    for char in prefix:
        if char.isspace() or not char.isprintable():
            raise ConfigError(
                "SOLARA_STATE_PREFIX", f"{prefix!r} contains whitespace or a control character", fix
            )
        if char in _PREFIX_GLOB:
            raise ConfigError(
                "SOLARA_STATE_PREFIX",
                f"{prefix!r} contains {char!r}, a Redis glob character: a pattern built from it matches "
                "other keys",
                fix,
            )
    if not _braces_balanced(prefix):
        raise ConfigError(
            "SOLARA_STATE_PREFIX",
            f"{prefix!r} has unbalanced hash-tag braces, so Redis Cluster would hash a different part of "
            "the key",
            "close every { with a later } (e.g. {app1}:), or drop the braces",
        )


def _braces_balanced(prefix: str) -> bool:
    """Every ``{`` closed by a later ``}`` before the next ``{``: the hash tag Redis Cluster reads."""
    open_brace = False
    for char in prefix:
        if char in "{}":
            if (char == "{") == open_brace:  # a "{" inside a tag, or a "}" outside one
                return False
            open_brace = not open_brace
    return not open_brace


def _validate_duration(variable: str, value: float, bound: float, bound_text: str, example: str) -> None:
    """Above zero, finite (NaN passes every comparison), at most ``bound``."""
    if not math.isfinite(value):
        raise ConfigError(variable, f"{value} is not a finite duration", f"use e.g. {example}")
    if value <= 0:
        raise ConfigError(variable, "must be above zero", f"use e.g. {example}")
    if value > bound:
        raise ConfigError(
            variable,
            f"{value:g} s is above the upper bound of {bound:g} s ({bound_text})",
            f"use at most {bound_text}, e.g. {example}",
        )


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
        fix = f"use one of the schemes {', '.join(s + '://' for s in URL_SCHEMES)}"
        raise ConfigError(
            "SOLARA_STATE_URL",
            f"{_redact(url)!r} is not a supported URL",
            _did_you_mean(scheme.lower(), URL_SCHEMES, fix, suffix="://") if sep else fix,
        )
    if not rest:
        raise ConfigError(
            "SOLARA_STATE_URL", f"{url!r} names no host or socket path", "e.g. redis://localhost:6379/0"
        )
