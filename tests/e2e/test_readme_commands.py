"""Every ``solara-persisted`` command the README and docs/ show passes as written, and prints what they show.

Commands are taken from the documents' shell blocks (```console, ```shell, ```sh, ```bash), so a
command added to the docs is tested without touching this file. A line ``$ solara-persisted ...``
(or ``solara-persisted ...`` in a block without prompts) is a command; the lines after it, up to
the next ``$`` line, are the output the document shows, and each of them must be a line of the real
output. Each document's commands run in order, as the installed ``solara-persisted`` in a fresh
process, from a copy of the repository's ``pyproject.toml`` and ``examples/`` (so ``codegen`` and
``golden`` cannot change the checkout). A command that serves until stopped cannot run this way:
it goes in ``NOT_RUN`` with the test that covers it instead.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CLI = Path(sys.executable).with_name("solara-persisted")
SHELL_BLOCK = re.compile(r"^```(?:console|shell|sh|bash|shell-session)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
TIMEOUT = 120.0

#: Commands (as written, without a trailing comment) that serve until stopped or need a running
#: instance, and what tests them.
NOT_RUN: dict[str, str] = {
    "solara-persisted drain --url http://127.0.0.1:8765 --timeout 15s": (
        "asks a running instance, with its drain token: tests/e2e/test_drain_fleet.py runs it against real "
        "`solara run` instances, and its refusals"
    ),
    "solara-persisted demo --fleet --port 8800": (
        "redis-server, two instances and a proxy until q: tests/e2e/test_demo_fleet.py drives it from a pipe "
        "and a pseudo-terminal, with chromium on the page"
    ),
}


@attrs.frozen
class Command:
    """One documented command: where it is, the command line, and the output the document shows."""

    where: str
    line: str
    shown: tuple[str, ...]

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.line, comments=True)

    @property
    def text(self) -> str:
        """The command without its comment, as NOT_RUN names it."""
        return shlex.join(self.argv)


def commands(document: Path) -> list[Command]:
    """The ``solara-persisted`` commands of a document's shell blocks, in order, with their shown output."""
    text = document.read_text(encoding="utf-8")
    found: list[Command] = []
    for block in SHELL_BLOCK.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        current: tuple[str, int, list[str]] | None = None
        for i, raw in enumerate(lines):
            is_command = raw.startswith("$ ") if prompted else bool(raw.strip())
            if is_command:
                if current is not None:
                    found.append(_command(document, *current))
                line = raw.removeprefix("$ ").strip()
                current = (line, first + i, []) if re.match(r"solara-persisted(\s|$)", line) else None
            elif current is not None and raw.strip():
                current[2].append(raw.strip())
        if current is not None:
            found.append(_command(document, *current))
    return found


def _command(document: Path, line: str, number: int, shown: list[str]) -> Command:
    name = document.relative_to(REPO) if document.is_relative_to(REPO) else document.name
    return Command(f"{name}:{number}", line, tuple(shown))


def sandbox(tmp_path: Path) -> Path:
    """What the commands read and write: the project's table and the examples, copied."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def failure(command: Command, cwd: Path) -> str | None:
    """Why the command does not pass as written (None when it does)."""
    argv = [str(CLI), *command.argv[1:]]
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"{command.where}: `{command.line}` still ran after {TIMEOUT:.0f} s; if it serves, add it to NOT_RUN"
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Traceback" in output:
        return f"{command.where}: `{command.line}` exited {done.returncode}:\n{output}"
    printed = {line.strip() for line in output.splitlines()}
    missing = [line for line in command.shown if line not in printed]
    if missing:
        return f"{command.where}: `{command.line}` does not print {missing}; it printed:\n{output}"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_documented_command_passes_as_written(document: Path, tmp_path: Path) -> None:
    cwd = sandbox(tmp_path)
    failures = [
        reason
        for command in commands(document)
        if command.text not in NOT_RUN and (reason := failure(command, cwd)) is not None
    ]
    assert not failures, "\n\n".join(failures)


def test_the_docs_show_commands_and_every_exclusion_is_still_shown() -> None:
    shown = [command for document in DOCUMENTS for command in commands(document)]
    texts = {command.text for command in shown}
    assert "solara-persisted check" in texts, (
        "the README's bare check is no longer found: is the extractor broken?"
    )
    assert len(texts) >= 5, texts
    stale = sorted(set(NOT_RUN) - texts)
    assert not stale, f"NOT_RUN lists commands no document shows any more: {stale}"


def test_a_failing_command_or_a_wrong_shown_output_fails(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "```console\n"
        "$ solara-persisted check examples/missing.py   # a comment\n"
        "$ solara-persisted check\n"
        "check passed\n"
        "5 keys: 5 unchanged\n"
        "$ git add schemas/\n"
        "```\n\n"
        "```console\nexport X=1\nsolara-persisted --version\n```\n"
    )
    found = commands(document)
    assert [(c.text, c.shown) for c in found] == [
        ("solara-persisted check examples/missing.py", ()),
        ("solara-persisted check", ("check passed", "5 keys: 5 unchanged")),
        ("solara-persisted --version", ()),
    ]
    cwd = sandbox(tmp_path / "sandbox")
    missing_file = failure(found[0], cwd)
    assert missing_file is not None and "exited 2" in missing_file and "no such file" in missing_file
    wrong_output = failure(found[1], cwd)
    assert wrong_output is not None and "does not print ['5 keys: 5 unchanged']" in wrong_output
    assert failure(found[2], cwd) is None
