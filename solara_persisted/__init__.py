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
    MigrationError,
    PersistedError,
    SpecError,
    UnsupportedTypeError,
)
from .migrations import AddField, Convert, RemoveField, Rename, migration, retired
from .solara_integration import adopt_persist_true, autostart, checkpoint, simulate_failover, state_generation
from .spec import Family, PersistedSpec, persisted, persisted_family, registry

__all__ = [
    "AddField",
    "BackendError",
    "CodecError",
    "ConfigError",
    "Convert",
    "DecodeError",
    "DuplicateKeyError",
    "EncodeError",
    "Engine",
    "EnvelopeError",
    "Family",
    "MigrationError",
    "PersistedError",
    "PersistedSpec",
    "RemoveField",
    "Rename",
    "Restored",
    "Settings",
    "SpecError",
    "UnsupportedTypeError",
    "checkpoint",
    "migration",
    "persisted",
    "persisted_family",
    "registry",
    "retired",
    "simulate_failover",
    "state_generation",
]

adopt_persist_true()
autostart()
