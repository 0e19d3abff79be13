"""State backends: the contract (``base``), ``memory`` (in-process) and ``redis`` (shared).

``create_backend`` picks one from the settings; the Redis client library is imported only when
the ``redis`` backend is chosen.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import (
    META_FIELD,
    Backend,
    FlushRequest,
    Takeover,
    validate_kernel_id,
)
from .memory import MemoryBackend

__all__ = [
    "META_FIELD",
    "Backend",
    "FlushRequest",
    "MemoryBackend",
    "Takeover",
    "create_backend",
    "validate_kernel_id",
]


def create_backend(settings: Settings) -> Backend:
    """The backend ``SOLARA_STATE_BACKEND`` names; raises ``ConfigError`` for an unknown one."""
    if settings.backend == "memory":
        return MemoryBackend(settings)
    if settings.backend == "redis":
        from .redis import RedisBackend

        return RedisBackend(settings)
    raise ConfigError(
        "SOLARA_STATE_BACKEND", f"no backend named {settings.backend!r}", "use memory or redis, or unset it"
    )
