"""The README's main command: the in-process failover demo tells the truth."""

from __future__ import annotations

import io

from rich.console import Console

from solara_persisted import demo


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
