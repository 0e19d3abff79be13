"""The README's main job on a fresh checkout: `bash .ci/demo` installs what the demo needs and no more.

A copy of this checkout without its `.venv` runs `bash .ci/demo --scripted` exactly as a new user
would (no stdin, CI=true); the demo must succeed, and its environment must hold the package but
none of the test tools (pytest, hypothesis, Playwright).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fleet import REPO


def checkout_copy(target: Path) -> None:
    """The files git knows (tracked and new, not ignored) of this checkout, without `.venv`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = REPO / name
        if name.startswith(".venv/") or not source.is_file():
            continue  # a file deleted in the working tree but not yet in git
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())


def test_the_demo_installs_only_what_it_needs(tmp_path: Path) -> None:
    fresh = tmp_path / "checkout"
    checkout_copy(fresh)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLARA_", "VIRTUAL_ENV"))}
    demo = subprocess.run(
        ["bash", ".ci/demo", "--scripted"],
        cwd=fresh, env={**env, "CI": "true"}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "'restore_success': 1" in demo.stdout
    python = fresh / ".venv" / "bin" / "python"
    probe = "import importlib.util as u; print([m for m in ('solara_persisted', 'pytest', 'hypothesis', 'playwright') if u.find_spec(m)])"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout
    assert found.strip() == "['solara_persisted']", f"the demo's environment holds {found.strip()}"
