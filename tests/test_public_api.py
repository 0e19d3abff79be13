"""The public surface stays exact, documented and licensed.

``solara_persisted.__all__`` is exactly the package's public surface (every other attribute is a
submodule or starts with an underscore) and exports every exception class of
``solara_persisted.errors``; each name in it, and every command (and option) of the
``solara-persisted`` CLI, is named in docs/api.md; every error renders as ``problem. Fix: fix``;
LICENSE is the license that pyproject.toml declares. A new public name or command cannot land
without its documentation, nor a new error class without its export.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import solara_persisted
from solara_persisted import errors
from solara_persisted.cli import main
from solara_persisted.errors import (
    CodecError,
    ConfigError,
    MigrationError,
    OversizeError,
    PersistedError,
    SpecError,
)

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

#: Exception classes of solara_persisted.errors that are deliberately not exported: name -> why.
_TOOLING = "raised only by the schema tooling (solara_persisted.schema), which the CLI turns into its refusal"
INTERNAL_ERRORS: dict[str, str] = {
    "ToolingError": _TOOLING,
    "AppLoadError": _TOOLING,
    "SchemaFileError": _TOOLING,
    "ProjectFileError": _TOOLING,
    "BreakerOpen": "the engine's guard raises it and catches it; no public call lets it out",
    "SnapshotBusy": "a snapshot raises it and the writer catches it; no public call lets it out",
}

#: The classes that render what an error is about before the problem: the arguments they take
#: before ``problem`` and the prefix those give. A subclass inherits its nearest base's entry.
ERROR_CONTEXT: dict[type[PersistedError], tuple[tuple[object, ...], str]] = {
    ConfigError: (("SOLARA_STATE_TTL",), "SOLARA_STATE_TTL: "),
    SpecError: (("app.py:12",), "app.py:12: "),
    CodecError: (("shop.cart", ".items[0]"), "persisted key shop.cart.items[0]: "),
    MigrationError: (("shop.cart", 2, ".total"), "persisted key shop.cart stored at version 2, at .total: "),
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


def public_attributes(module: types.ModuleType) -> set[str]:
    """The names ``module`` offers: not underscored, and not one of its own submodules.

    Only identifiers: pytest's assertion rewriting (this package is a pytest plugin) adds globals
    such as ``@py_builtins`` that no attribute access can reach.
    """
    return {
        name
        for name, value in vars(module).items()
        if name.isidentifier()
        and not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}")
    }


def error_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in ``solara_persisted.errors``, by name."""
    return {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def structured(cls: type[PersistedError], problem: str, fix: str | None) -> tuple[PersistedError, str]:
    """``cls`` built with ``problem=`` and ``fix=``, and the context its message starts with."""
    if issubclass(cls, OversizeError):  # builds its problem from the sizes
        return cls("shop.cart", ".items", 2048, 1024, exact=True, fix=fix), "persisted key shop.cart.items: "
    base = next((base for base in cls.__mro__ if base in ERROR_CONTEXT), None)
    args, context = ERROR_CONTEXT[base] if base else ((), "")
    return cls(*args, problem=problem, fix=fix), context


def test_the_public_surface_is_exactly_all() -> None:
    exported = set(solara_persisted.__all__)
    unlisted = sorted(public_attributes(solara_persisted) - exported)
    assert not unlisted, (
        f"public attributes of solara_persisted missing from its __all__ (export them, or import them "
        f"under an underscore name): {unlisted}"
    )
    missing = sorted(exported - set(vars(solara_persisted)))
    assert not missing, f"in solara_persisted.__all__ but not defined in solara_persisted: {missing}"


def test_every_error_class_is_exported() -> None:
    classes = error_classes()
    assert {"PersistedError", "ConfigError", "BackendError"} <= classes.keys()
    stale = sorted(set(INTERNAL_ERRORS) - classes.keys())
    assert not stale, f"INTERNAL_ERRORS names classes solara_persisted.errors no longer defines: {stale}"
    unexported = sorted(
        name for name in classes if name not in solara_persisted.__all__ and name not in INTERNAL_ERRORS
    )
    assert not unexported, (
        f"exception classes of solara_persisted.errors missing from solara_persisted.__all__ (export "
        f"them, or list them in INTERNAL_ERRORS with the reason): {unexported}"
    )
    both = sorted(set(INTERNAL_ERRORS) & set(solara_persisted.__all__))
    assert not both, f"listed as internal but exported: {both}"
    for name in solara_persisted.__all__:
        if name in classes:
            assert getattr(solara_persisted, name) is classes[name], name
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, PersistedError))
    assert not outside, f"errors of solara_persisted.errors that are not a PersistedError: {outside}"


@pytest.mark.parametrize(
    "cls",
    [cls for cls in error_classes().values() if issubclass(cls, PersistedError)],
    ids=lambda cls: cls.__name__,
)
def test_every_error_renders_problem_then_fix(cls: type[PersistedError]) -> None:
    error, context = structured(cls, "the value is wrong", "write a right one")
    if not issubclass(cls, OversizeError):
        assert error.problem == "the value is wrong"
    assert error.fix == "write a right one"
    assert str(error) == f"{context}{error.problem}. Fix: write a right one"
    assert error.args == (str(error),)
    if inspect.signature(cls).parameters["fix"].default is None:  # a fix is optional: the problem alone
        bare, context = structured(cls, "the value is wrong", None)
        assert bare.fix is None
        assert str(bare) == f"{context}{bare.problem}"


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


def test_a_server_imports_neither_the_schema_tooling_nor_the_dev_tools() -> None:
    """What ``solara run`` loads (the package and its Solara integration) stays the runtime: the
    schema tools, the dev tools, the operator tools (``doctor``), jsonschema (only ``check``
    validates with it), click and rich are for the command line."""
    probe = (
        "import sys, solara_persisted, solara_persisted.solara_integration\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(("
        "'solara_persisted.schema', 'solara_persisted.dev', 'solara_persisted.ops', 'jsonschema', 'click', "
        "'rich')))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.split() == [], f"a server process imports tooling modules: {result.stdout}"
