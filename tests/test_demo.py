"""The README's main command: the in-process failover demo tells the truth, and refuses in one line."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from rich.console import Console

from solara_persisted.cli import main
from solara_persisted.dev import demo


def test_demo_restores_on_the_second_instance_and_refuses_strangers() -> None:
    out = io.StringIO()
    results = demo.run(Console(file=out, width=120), debounce=0.05)  # `solara-persisted demo --scripted`
    assert results["A"].result == "miss"
    restored = results["B"]
    assert restored.result == "success"
    assert restored.values["demo.page"] == 3, "the change inside the debounce window is the documented loss"
    assert restored.values["demo.filters"].tags == frozenset({"used", "signed"})
    stranger = results["stranger"]
    assert (stranger.result, dict(stranger.values)) == ("miss", {}), "another cookie addresses another hash"
    assert stranger.address != restored.address
    assert (results["C"].result, results["C"].cause) == ("bailout", "hmac")
    assert "restore result=success" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--app", "no-such-app.py"], "the app no-such-app.py is not a file. Fix: pass --app with the path"),
        (["--app", "."], "the app . is not a file"),
        (["--scripted", "--fleet"], "--scripted and --fleet are two different demos. Fix: pass one of them"),
    ],
)
def test_a_wrong_demo_invocation_is_one_line(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, ["demo", *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {expected}"), line
