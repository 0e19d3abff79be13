"""``PersistenceStatus()``: a discreet notice on the page while persistence is degraded.

With the backend unreachable the app keeps working (degraded mode), but what a user changes would
not survive losing this server; an app can say so where it matters. Nothing is shown while
persistence is healthy or off. One thread per process, not per page, reads the status (no backend
I/O, the ``status`` of ``/resourcez``) once a second while any page shows the component, and
pushes a change only to the pages that show it (``solara_integration.watch_persistence_status``,
which enters each page's kernel context).
"""

from __future__ import annotations

import solara

from . import solara_integration

NOTICE = (
    "Persistence unavailable: your changes are kept in this page but will not survive losing this server."
)


@solara.component
def PersistenceStatus(message: str = NOTICE) -> solara.Element | None:
    """Nothing while persistence is healthy or off; ``message``, small and muted, while it is degraded.

    Updates itself within about a second of the status changing (``/resourcez`` says ``degraded``
    from the first failed backend call until one succeeds).
    """
    status, set_status = solara.use_state(solara_integration.persistence_status())
    solara.use_effect(lambda: solara_integration.watch_persistence_status(status, set_status), [])
    if status != "degraded":
        return None
    return solara.v.Html(
        tag="div",
        attributes={"role": "status", "aria-live": "polite"},
        class_="solara-persisted-status",
        style_="font-size: 0.8rem; opacity: 0.75; padding: 2px 0;",
        children=[message],
    )
