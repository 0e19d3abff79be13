"""What a kernel's restore did, for the app: ``RestoreInfo`` and the ``on_restore`` callbacks.

Apps recompute derived state after a restore, or tell the user "we restored your session";
both need to know what came back (which keys, which were migrated and from which version, how
old the state is). The Solara integration builds one ``RestoreInfo`` per kernel, runs the
callbacks with it in the kernel's context before the first render, and ``restore_info()`` reads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import overload

import attrs

from .engine import Restored
from .errors import SpecError
from .events import RestoreResult
from .spec import key_problem

logger = logging.getLogger("solara.state")

Callback = Callable[["RestoreInfo"], object]


@attrs.frozen
class RestoreInfo:
    """One kernel's restore, as the app sees it.

    ``result``: "success" (values came back), "miss" (nothing stored), "fresh-schema" (a schema
    change reset it), "bailout" (stored state failed verification or decoding; nothing installed)
    or "skipped" (not attempted: backend down or too slow, see ``cause``), never "timeout". ``keys`` were restored,
    ``migrated`` maps those read through a migration to the version they were stored at, ``age``
    is seconds since the state was last written (None when nothing was), ``duration`` how long
    the restore took, ``instance`` the host that did it.
    """

    result: RestoreResult
    keys: tuple[str, ...] = ()
    migrated: Mapping[str, int] = attrs.field(factory=dict)
    age: float | None = None
    duration: float = 0.0
    instance: str = ""
    cause: str | None = None

    @classmethod
    def of(cls, restored: Restored, *, duration: float, instance: str) -> RestoreInfo:
        result, cause = restored.result, restored.cause
        if result == RestoreResult.TIMEOUT:
            result, cause = RestoreResult.SKIPPED, "timeout"
        return cls(
            result,
            tuple(sorted(restored.values)),
            dict(restored.migrated),
            restored.age,
            duration,
            instance,
            cause,
        )


_lock = threading.Lock()
#: (callback's module and qualified name, key or None) -> callback; a re-run app module replaces
#: its callbacks instead of adding them twice.
_callbacks: dict[tuple[str, str | None], Callback] = {}


@overload
def on_restore(callback: Callback, *, key: str | None = None) -> Callback: ...
@overload
def on_restore(callback: None = None, *, key: str | None = None) -> Callable[[Callback], Callback]: ...
def on_restore(callback: Callback | None = None, *, key: str | None = None) -> Callback | Callable[[Callback], Callback]:
    """Run ``callback(info)`` after each kernel's restore, before its first render: ``@on_restore``,
    or ``@on_restore(key="cart")`` for only the restores that brought that key back.

    It runs in the kernel's context, so it may read and set reactives (restored values are in
    place). An exception is logged with its traceback; the restore and other callbacks go on.
    """
    if key is not None:
        problem = key_problem(key)
        if problem:
            raise SpecError("on_restore", problem, 'pass the key the value was declared with, e.g. key="shop.cart"')

    def register(function: Callback) -> Callback:
        if not callable(function):
            raise SpecError("on_restore", f"{function!r} is not callable", "decorate a function: @on_restore")
        name = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
        with _lock:
            _callbacks[(name, key)] = function
        return function

    return register if callback is None else register(callback)


def run_callbacks(info: RestoreInfo) -> None:
    """Every callback that applies to ``info``, in registration order (call in the kernel's context)."""
    with _lock:
        due = [(name, f) for (name, key), f in _callbacks.items() if key is None or key in info.keys]
    for name, function in due:
        try:
            function(info)
        except Exception:
            logger.exception("on_restore callback %s raised; the restore itself is unaffected", name)


def clear_callbacks() -> None:
    """Forget every registered callback (for tests and app reloads that want a clean slate)."""
    with _lock:
        _callbacks.clear()
