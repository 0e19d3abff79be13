"""The pre-stop drain, measured: how long until every session of a drained instance is restored elsewhere.

Run by hand, never as a test: ``.venv/bin/python bench/bench_drain.py [--sessions 10,100] [--browsers 10]``.

Two ``solara run --production`` instances, A and B, share one redis-server; every session starts
on A. The write-behind debounce is 30 s, so nothing a user changed is in Redis until the drain
writes it: a session restored on B with its last acknowledged change proves the drain lost
nothing, not even the debounce window. At the drain the balancer stops sending new connections to
A (as Kubernetes does when a pod starts terminating), then ``POST /_solara_persisted/drain`` runs.

- Protocol clients (``chaos_client.User``, Solara's websocket protocol, no browser) keep changing
  values (one change every 0.3-1.5 s each) until the drain cuts them off; each reconnects with the client's back-off (50 ms, then
  doubling) and restores on B. Per session: drain start to restore done on B; a session is lost
  when B restores an older value than the last one A acknowledged, and a dialog is the client's
  GIVE UP verdict. For scale, "first mount of all" is how long the same sessions took to open on
  A at the start (every page mounted at once on one instance, nothing to restore): the drain's
  last restore on B is bounded by the same work.
- Chromium pages (the suite's counter app) click a persisted counter, then the same drain; the
  page's own clock records when the re-mounted page shows the count again (a 10 ms poll in the
  page, started before the drain).

Both engines are not compared here: Solara's built-in engine has no pre-stop drain (its sessions
move only when the process stops, losing its debounce window; ``bench_server.py`` measures that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (BENCH, ROOT, ROOT / "tests", ROOT / "tests" / "e2e"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from chaos_client import User  # noqa: E402
from chaos_fleet import ChaosFleet  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DEBOUNCE = 30.0
TOKEN = secrets.token_urlsafe(32)
BOUND = 90.0  # seconds any phase may take before the run gives up
THINK = (0.3, 1.5)  # seconds between one user's changes: a hundred users make ~110 changes/s


def post_drain(url: str, timeout: float = 20.0) -> tuple[float, dict[str, Any]]:
    """The drain as the preStop hook asks it; (wall seconds the call took, the instance's report)."""
    request = urllib.request.Request(
        f"{url}/_solara_persisted/drain?timeout={timeout:g}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout + 5) as response:
        report = json.load(response)
    return time.monotonic() - started, report


async def _until(done: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {BOUND:.0f} s")
        await asyncio.sleep(0.05)


async def protocol_run(sessions: int, workdir: Path) -> dict[str, Any]:
    """``sessions`` protocol clients on A, drained to B; per-session times and losses."""
    env = {"SOLARA_STATE_DRAIN_TOKEN": TOKEN}
    with ChaosFleet(workdir, instances=2, debounce=DEBOUNCE, env=env) as fleet:
        a, b = fleet.instances
        fleet.route_only(a)
        history: list[dict[str, Any]] = []
        users = [
            User(uid, fleet.url, random.Random(uid), history, think=THINK, backoff=(0.05, 1.0))
            for uid in range(sessions)
        ]
        started = time.monotonic()
        stop_at = started + 4 * BOUND
        tasks = [asyncio.create_task(user.run(stop_at)) for user in users]
        try:
            await _until(lambda: all(user.acked >= 2 for user in users), "every session to change twice on A")
            fleet.route_only(b)
            drain_start = time.monotonic()
            call_seconds, report = await asyncio.to_thread(post_drain, a.url)

            def restored_on_b() -> dict[int, dict[str, Any]]:
                found: dict[int, dict[str, Any]] = {}
                for record in list(history):
                    if record["kind"] == "restore" and record["t"] > drain_start and record.get("instance") == b.name:
                        found.setdefault(record["user"], record)
                return found

            await _until(lambda: len(restored_on_b()) == sessions, "every session restored on B")
        finally:
            for user in users:
                user.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    restores = restored_on_b()
    lost = 0
    for user in users:
        acked_on_a = [r["seq"] for r in history if r["user"] == user.uid and r["kind"] == "ack" and r.get("instance") == a.name]
        if (restores[user.uid].get("seq") or 0) < max(acked_on_a, default=0):
            lost += 1
    dialogs = sum(1 for r in history if r["kind"] == "error" and "refresh" in str(r.get("detail", "")))
    times = sorted((record["t"] - drain_start) * 1000 for record in restores.values())
    first_mounts = {}
    for record in history:
        if record["kind"] == "restore" and record.get("instance") == a.name:
            first_mounts.setdefault(record["user"], record["t"])
    return {
        "clients": "protocol",
        "first_mount_last_ms": (max(first_mounts.values()) - started) * 1000,
        "sessions": sessions,
        "drain_call_ms": call_seconds * 1000,
        "report": report,
        "restored_p50_ms": statistics.median(times),
        "restored_last_ms": times[-1],
        "lost": lost,
        "dialogs": dialogs,
    }


#: Set by the page: when (its own wall clock) the re-mounted page shows the text again.
WATCH = """
(text) => {
  const before = solara.debug.remountCount;
  window.__drain = {shownAt: null};
  const timer = setInterval(() => {
    if (solara.debug.remountCount > before && solara.debug.connectionStatus === 'connected'
        && document.body.textContent.includes(text)) {
      window.__drain.shownAt = performance.timeOrigin + performance.now();
      clearInterval(timer);
    }
  }, 10);
}
"""


def browser_run(pages: int, workdir: Path) -> dict[str, Any]:
    """``pages`` Chromium pages (one browser context each: their own session) on A, drained to B."""
    from bench_engine import redis_server  # a throwaway redis-server on loopback
    from counter_page import APP, click, count_on
    from fleet import CHROMIUM, CHROMIUM_ARGS, Fleet
    from playwright.sync_api import sync_playwright

    with redis_server() as port, Fleet(workdir) as fleet, sync_playwright() as playwright:
        env = {
            "SOLARA_STATE_BACKEND": "redis",
            "SOLARA_STATE_URL": f"redis://127.0.0.1:{port}/0",
            "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
            "SOLARA_STATE_FLUSH_DEBOUNCE": f"{DEBOUNCE:.0f}s",
            "SOLARA_STATE_DRAIN_TOKEN": TOKEN,
            "SOLARA_SESSION_HTTP_ONLY": "true",
        }
        a = fleet.server(APP, env=env, name="a")
        b = fleet.server(APP, env=env, name="b")
        proxy = fleet.proxy(a)
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            opened = []
            for n in range(pages):
                context = chromium.new_context(viewport={"width": 800, "height": 600})
                page = context.new_page()
                page.goto(proxy.url)
                count_on(page, 0)
                click(page, 1 + n % 3)
                count_on(page, 1 + n % 3)
                page.evaluate(WATCH, f"Persisted: {1 + n % 3}")
                opened.append(page)
            proxy.target = b.port
            drain_start = time.time() * 1000
            call_seconds, report = post_drain(a.url)
            shown = []
            for page in opened:
                page.wait_for_function("() => window.__drain.shownAt !== null", timeout=BOUND * 1000)
                shown.append(page.evaluate("() => window.__drain.shownAt") - drain_start)
            dialogs = sum(page.get_by_text("Please refresh the page").is_visible() for page in opened)
        finally:
            chromium.close()
    shown.sort()
    return {
        "clients": "chromium",
        "first_mount_last_ms": None,
        "sessions": pages,
        "drain_call_ms": call_seconds * 1000,
        "report": report,
        "restored_p50_ms": statistics.median(shown),
        "restored_last_ms": shown[-1],
        "lost": 0,  # every page waited for its own count above: a lost click never shows
        "dialogs": dialogs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="10,100", help="protocol-client session counts, comma-separated")
    parser.add_argument("--browsers", type=int, default=10, help="Chromium pages (0: none)")
    parser.add_argument("--json", type=Path, help="write the runs here")
    args = parser.parse_args(argv)
    console = Console()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        for n in [int(part) for part in args.sessions.split(",") if part]:
            with console.status(f"drain with {n} protocol sessions"):
                runs.append(asyncio.run(protocol_run(n, Path(tmp) / f"protocol-{n}")))
        if args.browsers:
            with console.status(f"drain with {args.browsers} Chromium pages"):
                runs.append(browser_run(args.browsers, Path(tmp) / "chromium"))
    table = Table(title=f"pre-stop drain of A, sessions restored on B (debounce {DEBOUNCE:.0f} s)")
    for column in ("clients", "sessions", "drain call (ms)", "kernels / unwritten / closed",
                   "restored p50 (ms)", "last restored (ms)", "first mount of all (ms)", "lost", "dialogs"):
        table.add_column(column, justify="right")
    for run in runs:
        report = run["report"]
        table.add_row(
            run["clients"],
            str(run["sessions"]),
            f"{run['drain_call_ms']:.0f}",
            f"{report['kernels']} / {report['unwritten']} / {report['websockets_closed']}",
            f"{run['restored_p50_ms']:.0f}",
            f"{run['restored_last_ms']:.0f}",
            "–" if run["first_mount_last_ms"] is None else f"{run['first_mount_last_ms']:.0f}",
            str(run["lost"]),
            str(run["dialogs"]),
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()
