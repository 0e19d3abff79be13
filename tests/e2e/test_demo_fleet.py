"""`solara-persisted demo --fleet` as a person uses it: Enter kills the serving instance, q quits.

The command runs as its own process with stdin a pipe (the person's keyboard); chromium clicks
through the shop behind its proxy. After a failover the page shows the same selections, restored
from the fleet's redis-server, and after `q` nothing the command started is still running. At a
real terminal (a pseudo-terminal here) `q` quits without Enter and the terminal's mode comes back;
a busy port is one line, before redis-server or any instance starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from fleet import server_env, wait_until
from playwright.sync_api import Page, expect
from rich.console import Console

from solara_persisted.dev.fleet import DemoFleet, answers_ready, cbreak, keys

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

CLI = Path(sys.executable).with_name("solara-persisted")
PERSISTED_KEYS = {"shop.filters", "shop.selected", "shop.checkout"}
RESTORE_TIMEOUT = 20_000  # ms: the client's reconnect back-off plus the restore


def _proc_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], fields[19]


def _children(pid: int) -> dict[int, tuple[str, str]]:
    """The direct children of `pid`: pid -> (start time, command line)."""
    found: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) and stat[0] == pid:
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(entry.name)] = (stat[2], cmdline)
    return found


def _alive(pid: int, started: str) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[2] == started and stat[1] != "Z"


def _state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/resourcez", timeout=5) as response:
        return json.load(response)["state"]


def test_enter_fails_over_to_b_with_the_selections_and_q_leaves_nothing_running(
    solara_cdn_assets: None, page: Page, tmp_path: Path
) -> None:
    out_path = tmp_path / "demo.out"
    # port 0: the proxy binds a free port itself and the demo prints it, so no other process can
    # take a port picked here while the demo is still starting redis-server and both instances
    command = [str(CLI), "demo", "--fleet", "--port", "0", "--debounce", "0.1"]
    with open(out_path, "wb") as out:
        demo = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**server_env(), "COLUMNS": "200"},
            start_new_session=True,
        )
    assert demo.stdin is not None
    children: dict[int, tuple[str, str]] = {}

    def output() -> str:
        return out_path.read_text(encoding="utf-8", errors="replace")

    def proxy_url() -> str | None:
        """The proxy's URL once the demo printed it (it listens by then), else None."""
        if demo.poll() is not None:
            raise AssertionError(f"the demo exited with {demo.returncode}:\n{output()}")
        printed = re.search(r"Open (http://\S+)", output())
        return printed[1] if printed else None

    try:
        wait_until(proxy_url, "the demo printing its proxy's address", timeout=90)
        url = proxy_url()
        assert url is not None
        wait_until(lambda: answers_ready(url), "the demo's proxy answering")
        children.update(_children(demo.pid))
        a_url = re.search(r"instance A ready on (http://\S+)", output())
        assert a_url, output()

        page.goto(url)
        page.get_by_role("checkbox", name="In stock only").check()
        page.get_by_role("button", name="b2").click()
        expect(page.get_by_text("Selected: Designing Data-Intensive Applications")).to_be_visible()
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("Checkout, step 2 of 3")).to_be_visible()
        page.get_by_role("button", name="Unsaved clicks: 0").click()
        expect(page.get_by_role("button", name="Unsaved clicks: 1")).to_be_visible()
        wait_until(
            lambda: {row["key"] for row in _state(a_url[1])["sync_by_key"]} >= PERSISTED_KEYS,
            "A writing all three persisted inputs to redis",
        )

        demo.stdin.write(b"\n")  # the person presses Enter: A is SIGKILLed, the proxy goes to B
        demo.stdin.flush()
        wait_until(lambda: "killed A" in output(), "the demo killing A")
        # the unpersisted counter starting again proves the page re-mounted on B's fresh kernel
        expect(page.get_by_role("button", name="Unsaved clicks: 0")).to_be_visible(timeout=RESTORE_TIMEOUT)
        expect(page.get_by_text("Selected: Designing Data-Intensive Applications")).to_be_visible()
        expect(page.get_by_text("Checkout, step 2 of 3")).to_be_visible()
        expect(page.get_by_role("checkbox", name="In stock only")).to_be_checked()
        wait_until(
            lambda: re.search(r"B \(serving\) /resourcez state: .*restore_success=1", output()),
            "the demo printing B's restore",
        )
        wait_until(lambda: "A is back" in output(), "A restarted as the standby", timeout=60)
        children.update(_children(demo.pid))

        demo.stdin.write(b"q\n")
        demo.stdin.flush()
        assert demo.wait(timeout=40) == 0, output()
        # the command waited for every child before exiting, so none may be left even for a moment
        left = [cmdline for pid, (started, cmdline) in children.items() if _alive(pid, started)]
        assert not left, f"still running after q: {left}"
    except BaseException:
        # the assertions name what did not happen; the demo's own narration tells why
        print(f"--- the demo's output ---\n{output()}")
        raise
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)  # the command's own clean-up path
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(timeout=10)
        for pid, (started, _) in children.items():
            if _alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

    commands = [cmdline for _, cmdline in children.values()]
    assert sum("redis-server" in c for c in commands) == 1, commands
    assert sum("solara run" in c for c in commands) == 3, commands  # A, B, and A again after the kill
    assert "fleet stopped" in output()


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on for the duration."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("mode", [["--fleet"], []], ids=["fleet", "in-process"])
def test_a_busy_port_is_one_line_with_a_port_hint_before_anything_starts(mode: list[str]) -> None:
    with busy_port() as port:
        started = time.monotonic()
        done = subprocess.run(
            [str(CLI), "demo", *mode, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=server_env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done
    assert done.stdout == "", "nothing started, so nothing narrated"
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"Error: the demo port 127.0.0.1:{port} cannot be used (Address already in use)")
    assert re.search(r"\. Fix: pass --port with a free one, e\.g\. --port \d+$", line), line
    assert time.monotonic() - started < 30, "refused before starting redis-server or any instance"


def test_the_fleet_holds_its_port_before_starting_redis(tmp_path: Path) -> None:
    """Without the command's early check (a port taken between the check and the start), the fleet's
    own proxy, bound first, refuses in one line and redis-server never starts."""
    with busy_port() as port:
        fleet = DemoFleet(
            Console(file=io.StringIO()),
            app=tmp_path / "app.py",
            host="127.0.0.1",
            port=port,
            debounce=0.1,
        )
        try:
            with pytest.raises(click.ClickException) as refused:
                fleet.start()
        finally:
            fleet.close()
    assert fleet.redis is None and fleet.instances == []
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith(f"the demo port 127.0.0.1:{port} cannot be used (")
    assert message.endswith("Fix: pass --port with a free one")


def test_keys_act_without_enter_and_the_terminal_mode_comes_back() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO
        with cbreak(slave):
            during = termios.tcgetattr(slave)
            assert not during[3] & termios.ICANON, "a key arrives without Enter"
            assert not during[3] & termios.ECHO, "keys are not echoed over the narration"
            assert during[3] & termios.ISIG, "Ctrl-C still interrupts"
            os.write(master, b"k")
            pressed = keys(slave)
            assert next(pressed) == "k"
            os.write(master, b"\rX\x1b[Aq")
            assert [next(pressed) for _ in range(3)] == ["", "X", "\x1b[A"]  # Enter; an arrow is one key
            assert next(pressed) == "q"
            os.write(master, b"\x04")
            assert next(pressed) == "q", "Ctrl-D quits as end of input does"
        assert termios.tcgetattr(slave) == before
        with pytest.raises(KeyboardInterrupt), cbreak(slave):  # however it ends
            raise KeyboardInterrupt
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_q_quits_the_fleet_without_enter_at_a_terminal() -> None:
    master, slave = pty.openpty()
    termios.tcsetattr(slave, termios.TCSANOW, _canonical(termios.tcgetattr(slave)))
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # rows, columns: no wrapping
    before = termios.tcgetattr(slave)
    output = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):  # EIO once the child side is closed
            while chunk := os.read(master, 4096):
                output.extend(chunk)

    demo = subprocess.Popen(
        [str(CLI), "demo", "--fleet", "--port", "0", "--debounce", "0.1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=server_env(),
        start_new_session=True,
    )
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def text() -> str:
        """What the person sees: the terminal's output without its colours."""
        return re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace"))

    try:
        wait_until(lambda: "q: quit" in text() or demo.poll() is not None, "the demo's key help", timeout=150)
        assert demo.poll() is None, text()
        assert re.search(r"Now serving: A", text()), text()
        os.write(master, b"x")  # no Enter: a single key
        wait_until(lambda: "unknown key 'x'" in text(), "the demo answering a single key")
        os.write(master, b"q")
        assert demo.wait(timeout=40) == 0, text()
        wait_until(lambda: "fleet stopped" in text(), "the demo's last line")
        assert termios.tcgetattr(slave) == before, "the terminal's mode is restored"
    except BaseException:
        print(f"--- the demo's output ---\n{text()}")
        raise
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            demo.wait(timeout=30)
        os.close(slave)
        reader.join(5)
        os.close(master)


def _canonical(attributes: list[Any]) -> list[Any]:
    """Canonical mode with echo, as a shell leaves a terminal (a fresh pty already is, made explicit)."""
    attributes = list(attributes)
    attributes[3] |= termios.ICANON | termios.ECHO | termios.ISIG
    return attributes
