"""The public surface stays documented and licensed.

``solara_persisted.__all__`` holds only public, importable names; each of them, and every command
(and option) of the ``solara-persisted`` CLI, is named in docs/api.md; LICENSE is the license that
pyproject.toml declares. A new public name or command cannot land without its documentation.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
from click.testing import CliRunner

import solara_persisted
from solara_persisted.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"
PYPROJECT = ROOT / "pyproject.toml"
LICENSE = ROOT / "LICENSE"

#: SPDX id -> the license file's first line and a sentence only that license's text has.
LICENSE_TEXTS = {
    "MIT": (
        "MIT License",
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software",
    ),
}

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"(`+)(.+?)\1")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _prose(markdown: str) -> str:
    """The document without its fenced code blocks (a name only used in an example is not documented)."""
    return _FENCE.sub("", markdown)


def _headings(markdown: str) -> list[str]:
    return [line.lstrip("#").strip() for line in _prose(markdown).splitlines() if line.startswith("#")]


def _code_spans(markdown: str) -> list[str]:
    return [span.strip() for _, span in _SPAN.findall(_prose(markdown))]


def _leading_name(text: str) -> str | None:
    """``persisted`` of ``persisted(*, key, ...)``, ``@persisted``, ``solara_persisted.persisted``."""
    text = text.strip("` ").lstrip("@").removeprefix("solara_persisted.")
    match = _NAME.match(text)
    return match.group() if match else None


def documented_names(markdown: str) -> set[str]:
    """The name each heading and each inline code span starts with."""
    names = {_leading_name(text) for text in [*_headings(markdown), *_code_spans(markdown)]}
    return names - {None}  # type: ignore[return-value]


def documents_command(markdown: str, command: str) -> bool:
    """A heading or code span starts with ``solara-persisted <command>``."""
    pattern = re.compile(rf"`?solara-persisted {re.escape(command)}(?![\w-])")
    return any(pattern.match(text) for text in [*_headings(markdown), *_code_spans(markdown)])


def command_section(markdown: str, command: str) -> str:
    """The text from the command's heading to the next heading ('' without one)."""
    lines = _prose(markdown).splitlines()
    pattern = re.compile(rf"#+ `?solara-persisted {re.escape(command)}(?![\w-])")
    for start, line in enumerate(lines):
        if pattern.match(line):
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
            return "\n".join(lines[start:end])
    return ""


def cli_commands() -> list[str]:
    """The commands ``solara-persisted --help`` lists."""
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "\nCommands:\n" in result.output, result.output
    listing = result.output.split("\nCommands:\n", 1)[1]
    commands = re.findall(r"^  ([a-z][\w-]*)", listing, re.MULTILINE)
    assert commands, f"no command found in:\n{result.output}"
    return commands


def test_all_has_no_private_names() -> None:
    exported = solara_persisted.__all__
    private = [name for name in exported if name.startswith("_")]
    assert not private, f"private names in solara_persisted.__all__: {private}"
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"names listed twice in solara_persisted.__all__: {duplicates}"


def test_every_public_name_is_importable() -> None:
    missing = [name for name in solara_persisted.__all__ if not hasattr(solara_persisted, name)]
    assert not missing, f"in solara_persisted.__all__ but not importable from solara_persisted: {missing}"
    namespace: dict[str, object] = {}
    exec("from solara_persisted import *", namespace)
    assert set(solara_persisted.__all__) <= namespace.keys()


def test_every_public_name_is_documented() -> None:
    documented = documented_names(API_DOC.read_text(encoding="utf-8"))
    undocumented = sorted(set(solara_persisted.__all__) - documented)
    assert not undocumented, (
        f"public names missing from {API_DOC.relative_to(ROOT)} (as a heading or an inline code name, "
        f"outside code blocks): {undocumented}"
    )


def test_every_cli_command_is_documented() -> None:
    markdown = API_DOC.read_text(encoding="utf-8")
    undocumented = [command for command in cli_commands() if not documents_command(markdown, command)]
    assert not undocumented, (
        f"CLI commands missing from {API_DOC.relative_to(ROOT)} "
        f"(a heading `solara-persisted <command> ...`): {undocumented}"
    )


def test_every_cli_option_is_documented() -> None:
    markdown = API_DOC.read_text(encoding="utf-8")
    undocumented = []
    for name, command in sorted(main.commands.items()):
        spans = _code_spans(command_section(markdown, name))
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for option in param.opts:
                if option.startswith("--") and not any(re.match(rf"{option}(?![\w-])", s) for s in spans):
                    undocumented.append(f"{name} {option}")
    assert not undocumented, (
        f"CLI options missing from their command's section of {API_DOC.relative_to(ROOT)}: {undocumented}"
    )


def test_license_matches_pyproject() -> None:
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["license"]
    assert isinstance(declared, str), f"pyproject's license should be an SPDX id, got {declared!r}"
    assert declared in LICENSE_TEXTS, (
        f"pyproject declares {declared!r}: add its title and text to LICENSE_TEXTS"
    )
    title, sentence = LICENSE_TEXTS[declared]
    text = LICENSE.read_text(encoding="utf-8")
    assert text.splitlines()[0].strip() == title, f"LICENSE does not start with {title!r}, as {declared} does"
    assert sentence in " ".join(text.split()), f"LICENSE is not the {declared} license text"
    assert re.search(r"^Copyright \(c\) \d{4} \S", text, re.MULTILINE), "LICENSE has no copyright line"


def test_the_checks_read_only_headings_and_inline_code() -> None:
    sample = "\n".join(
        [
            "## Engine (embedding)",
            "### `persisted(*, key)`",
            "Prose mentions Family but does not name it; `@migration(...)`, `solara_persisted.registry`.",
            "### `solara-persisted check APP_MODULE...`",
            "| `--schemas-dir DIRECTORY` | where |",
            "```python",
            "from solara_persisted import Rename",
            "`retired`",
            "```",
            "`solara-persisted codegenx`",
        ]
    )
    assert documented_names(sample) >= {"Engine", "persisted", "migration", "registry"}
    assert not documented_names(sample) & {"Family", "Rename", "retired", "Prose"}
    assert documents_command(sample, "check")
    assert not documents_command(sample, "codegen")
    assert "--schemas-dir DIRECTORY" in _code_spans(command_section(sample, "check"))
    assert command_section(sample, "golden") == ""
