"""solara-persisted: typed, signed, schema-versioned Solara state that survives losing an instance."""

from __future__ import annotations

from .config import Settings
from .engine import Engine, Restored
from .errors import (
    BackendError,
    CodecError,
    ConfigError,
    DecodeError,
    DuplicateKeyError,
    EncodeError,
    EnvelopeError,
    PersistedError,
    SpecError,
    UnsupportedTypeError,
)
from .solara_integration import autostart, simulate_failover, state_generation
from .spec import Family, PersistedSpec, persisted, persisted_family, registry

__all__ = [
    "BackendError",
    "CodecError",
    "ConfigError",
    "DecodeError",
    "DuplicateKeyError",
    "EncodeError",
    "Engine",
    "EnvelopeError",
    "Family",
    "PersistedError",
    "PersistedSpec",
    "Restored",
    "Settings",
    "SpecError",
    "UnsupportedTypeError",
    "persisted",
    "persisted_family",
    "registry",
    "simulate_failover",
    "state_generation",
]

autostart()
