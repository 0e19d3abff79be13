"""How a setting's text becomes a value: durations, sizes, booleans, whole numbers, fractions.

Standard library only and free of package imports beyond ``errors``, because the start-up shim
(``_solara_persisted_startup``) loads this file before Solara parses its settings, long before
``solara_persisted`` itself may be imported. ``config`` uses the same functions: one parser.
"""

from __future__ import annotations

import math
import re

from .errors import ConfigError

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
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_duration(name: str, raw: str) -> float:
    """``"300ms"``, ``"5m"``, ``"24h"`` or plain seconds -> seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(
            name, f"{raw!r} is not a duration", "write a number with a unit: 300ms, 30s, 5m, 24h or 7d"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):  # "9" * 400 parses to inf
        raise ConfigError(
            name, f"{raw!r} is not a finite duration", "write a number with a unit, e.g. 30s or 24h"
        )
    return seconds


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
    """``1 true yes on`` / ``0 false no off`` (any case); empty is false."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"{raw!r} is not a boolean", "write true or false")


def parse_int(name: str, raw: str, minimum: int) -> int:
    """A whole number of at least ``minimum``."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number", f"write an integer >= {minimum}") from None
    if value < minimum:
        raise ConfigError(name, f"{value} is below the minimum {minimum}", f"write an integer >= {minimum}")
    return value


def parse_fraction(name: str, raw: str) -> float:
    """A number in (0, 1]."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(
            name, f"{raw!r} is not a number", "write a fraction between 0 and 1, e.g. 0.5"
        ) from None
    if not 0.0 < value <= 1.0:
        raise ConfigError(name, f"{value} is outside (0, 1]", "write a fraction between 0 and 1, e.g. 0.5")
    return value
