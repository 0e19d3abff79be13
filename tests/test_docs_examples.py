"""Every Python example in the README and docs/ runs as written.

Examples run in document order, each as a file of its own (so Solara can derive ``persist=True``
keys from the source), sharing one namespace per document, in a registry of their own. A block
that is deliberately partial (it names things defined elsewhere) is preceded by a line
``<!-- fragment -->``; it must still be valid Python.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
import solara.server.starlette  # noqa: F401  # reactives scope per kernel, as in a server

from solara_persisted.restore_info import clear_callbacks
from solara_persisted.spec import registry

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"


def blocks(document: Path) -> list[tuple[int, str, bool]]:
    """(line, code, is a fragment) for each ```python block."""
    text = document.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        previous = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        found.append((line, match.group(1), previous.strip() == FRAGMENT))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_example_runs(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    with registry.isolated():
        try:
            for line, code, fragment in blocks(document):
                where = f"{document.name}:{line}"
                if fragment:
                    compile(code, where, "exec")
                    continue
                example = tmp_path / f"example_{line}.py"
                example.write_text(code, encoding="utf-8")
                try:
                    namespace = runpy.run_path(str(example), init_globals=namespace, run_name=f"docs_{line}")
                except Exception as error:
                    raise AssertionError(
                        f"the example at {where} fails: {type(error).__name__}: {error}; fix it, or mark a "
                        f"deliberately partial one with a {FRAGMENT} line before it"
                    ) from error
        finally:
            clear_callbacks()


def test_a_fragment_marker_is_seen_and_a_broken_example_fails(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(f"text\n\n{FRAGMENT}\n```python\nundefined_name\n```\n\n```python\nx = 1\n```\n")
    assert [fragment for _, _, fragment in blocks(document)] == [True, False]
    broken = tmp_path / "broken.md"
    broken.write_text("```python\nundefined_name\n```\n")
    with pytest.raises(AssertionError, match=r"broken\.md:1 fails: NameError"), pytest.MonkeyPatch.context() as patch:
        test_every_example_runs(broken, tmp_path, patch)
