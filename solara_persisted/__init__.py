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
from .restore_info import RestoreInfo, on_restore
from .solara_integration import (
    adopt_persist_true,
    autostart,
    checkpoint,
    forget_session,
    restore_info,
    simulate_failover,
    state_generation,
)
from .spec import Family, PersistConfig, PersistedSpec, persisted, persisted_family, registry
from .status import PersistenceStatus

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
    "PersistConfig",
    "PersistedError",
    "PersistedSpec",
    "PersistenceStatus",
    "RemoveField",
    "Rename",
    "RestoreInfo",
    "Restored",
    "Settings",
    "SpecError",
    "UnsupportedTypeError",
    "checkpoint",
    "forget_session",
    "migration",
    "on_restore",
    "persisted",
    "persisted_family",
    "registry",
    "restore_info",
    "retired",
    "simulate_failover",
    "state_generation",
]

adopt_persist_true()
autostart()
