"""``solara-persisted drain``: ask a running instance to hand its sessions on before it stops.

Meant for a Kubernetes ``preStop`` exec hook, run inside the pod with the server's environment:
the token comes from ``SOLARA_STATE_DRAIN_TOKEN`` (a ``secretKeyRef``), never from the command
line, where ``ps`` would show it. The instance does the work (``solara_integration.drain_instance``);
this is only its authenticated, bounded HTTP call.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from ..errors import ToolingError

#: The instance's drain route (``solara_integration.DRAIN_PATH``; the CLI does not import the server side).
DRAIN_PATH = "/_solara_persisted/drain"
#: Seconds the HTTP call may take beyond the drain's own bound.
SLACK = 5.0


def drain(url: str, environ: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """POST the drain to the instance at ``url``; its report (kernels, unwritten, websockets_closed, seconds).

    Raises ``ToolingError`` with the one-line reason when it cannot ask or the instance refuses.
    """
    token = environ.get("SOLARA_STATE_DRAIN_TOKEN", "").strip()
    if not token:
        raise ToolingError(
            "SOLARA_STATE_DRAIN_TOKEN is not set here",
            "run the drain with the server's own environment (the same secretKeyRef as the container)",
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ToolingError(f"{url!r} is not an http(s) URL", "pass the instance's own address, e.g. http://127.0.0.1:8765")
    target = url.rstrip("/") + DRAIN_PATH + "?" + urllib.parse.urlencode({"timeout": f"{timeout:g}"})
    request = urllib.request.Request(target, method="POST", headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the pod itself, never a proxy
    try:
        with opener.open(request, timeout=timeout + SLACK) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        said = error.read().decode("utf-8", "replace").strip()
        fixes = {
            401: "give the drain the same SOLARA_STATE_DRAIN_TOKEN as the server",
            404: "set SOLARA_STATE_DRAIN_TOKEN on the server (and run solara-persisted 0.1+ there)",
        }
        raise ToolingError(
            f"the instance refused the drain: HTTP {error.code} {said}", fixes.get(error.code, "see the server's log")
        ) from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ToolingError(f"cannot reach the instance at {url}: {reason}", "check --url and that the server runs") from error
