"""solara-persisted: typed, signed, schema-versioned Solara state that survives losing an instance.

The public surface is exactly ``__all__`` (tests/test_public_api.py checks it): any other
attribute here is a submodule or starts with an underscore.
"""

from . import solara_integration
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
    InvalidIdentifierError,
    MalformedEnvelopeError,
    MigrationError,
    OversizeError,
    PersistedError,
    SpecError,
    TamperedError,
    UnsupportedTypeError,
)
from .migrations import AddField, Convert, RemoveField, Rename, migration, retired
from .restore_info import RestoreInfo, on_restore
from .solara_integration import (
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
    "InvalidIdentifierError",
    "MalformedEnvelopeError",
    "MigrationError",
    "OversizeError",
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
    "TamperedError",
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

solara_integration.adopt_persist_true()
solara_integration.autostart()
