"""The README's "Use it in your own app", followed as written: build the wheel, install it into a
fresh environment, run the quick-start app with the README's one-liner, use it in chromium.

The fresh environment sees this checkout's dependencies through a ``.pth`` file (no download),
but imports solara_persisted from the installed wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from fleet import REPO, free_port, server_env, wait_until
from playwright.sync_api import Page, expect

from solara_persisted.dev.fleet import answers_ready

pytestmark = pytest.mark.flaky(reruns=1, reruns_delay=1)

README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Use it in your own app") : README.index("## Configure a fleet")]
PLACEHOLDER = "/path/to/solara-persisted"


def console_commands(section: str) -> list[str]:
    """The commands of the section's console blocks (``$ `` lines, comments stripped)."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:].split("  #")[0].strip())
    return commands


def test_the_readme_shows_the_quickstart_app_as_it_is() -> None:
    (shown,) = re.findall(r"```python\n(.*?)```", SECTION, re.S)
    assert shown == (REPO / "examples" / "quickstart.py").read_text(encoding="utf-8")
    assert len(shown.splitlines()) <= 20, "a quick start fits on a screen"


def test_the_wheel_installs_and_the_quickstart_runs(tmp_path: Path, page: Page) -> None:
    install_checkout, build_wheel, install_wheel, run = console_commands(SECTION)
    assert install_checkout == f"pip install {PLACEHOLDER}"
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        pip + shlex.split(build_wheel.replace(PLACEHOLDER, str(REPO)))[1:],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    wheel = shlex.split(install_wheel)[2]
    assert (tmp_path / wheel).is_file(), f"the README names {wheel}; pip built {list((tmp_path / 'dist').iterdir())}"

    venv = tmp_path / "app-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    # the dependencies come from this checkout's environment; solara_persisted must come from the wheel
    Path(site, "checkout-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # pip would have installed the dependencies' data files (widget JavaScript and config, Solara's
    # CDN cache) and Solara's console script with them; the .pth route installs neither. Linked
    # before anything imports Solara, which creates its cache directory at import.
    for tree in ("share", "etc"):  # Jupyter's widget config sits in etc/, the assets in share/
        for data in Path(sys.prefix, tree).iterdir():
            if not (venv / tree / data.name).exists():
                (venv / tree).mkdir(exist_ok=True)
                (venv / tree / data.name).symlink_to(data)
    installed = subprocess.run(
        [*pip, "--python", str(python), *shlex.split(install_wheel)[1:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [python, "-c", "import solara_persisted; print(solara_persisted.__file__)"],
        capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), f"imported from {where}, not from the wheel"
    solara_script = venv / "bin" / "solara"
    solara_script.write_text(f'#!/bin/sh\nexec "{python}" -m solara "$@"\n')
    solara_script.chmod(0o755)

    port = free_port()
    env = server_env(
        {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "PORT": str(port),
            "BROWSER": "true",  # solara run opens a browser for a person; here the test's chromium looks
        }
    )
    log = tmp_path / "quickstart.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", run], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_ready(url) or server.poll() is not None, "the quick start serving", 60)
        assert server.poll() is None, log.read_text()
        page.goto(url)
        page.get_by_role("button", name="Clicked 0 times").click()
        expect(page.get_by_role("button", name="Clicked 1 times")).to_be_visible()
        page.get_by_label("Groceries").fill("milk")
        page.get_by_label("Groceries").press("Enter")
        wait_until(lambda: synced(url) >= 2, "both values written", 20)
        assert "solara-persisted active: backend=memory" in log.read_text()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(10)


def synced(url: str) -> int:
    with urllib.request.urlopen(url + "/resourcez", timeout=5) as response:
        return json.load(response)["state"]["sync_count"]


def test_the_fleet_settings_start_a_production_server(tmp_path: Path, redis_url: str) -> None:
    """The README's fleet block, with its placeholders filled in: this test's Redis for
    ``redis.internal``, one generated secret as ``$STATE_SECRET``, the quick start as ``app.py``."""
    fleet = README[README.index("## Configure a fleet") :]
    (block,) = re.findall(r"```console\n(.*?)```", fleet[: fleet.index("Every setting")], re.S)
    assert "$(" not in block, "the fleet settings never generate a secret inline"
    script = block.replace("redis://redis.internal:6379/0", redis_url)
    (tmp_path / "app.py").write_text((REPO / "examples" / "quickstart.py").read_text(encoding="utf-8"))
    port = free_port()
    env = server_env(
        {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "STATE_SECRET": secrets.token_urlsafe(32),
            "PORT": str(port),
        }
    )
    log = tmp_path / "fleet.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_ready(url) or server.poll() is not None, "the production server", 60)
        assert server.poll() is None, log.read_text()
        with urllib.request.urlopen(url + "/resourcez", timeout=5) as response:
            state = json.load(response)["state"]
        assert state["status"] == "healthy", state
        assert "solara-persisted active: backend=redis" in log.read_text()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(10)
