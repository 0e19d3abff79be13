"""Settings Solara parses itself, before our code runs: every spelling our docs show starts a real
``solara run``, and a value Solara would crash on meets our one-line refusal instead.

Solara converts these variables with its own types when ``solara.server.settings`` is imported;
the start-up shim (``solara_persisted_startup.pth``) rewrites our spellings to Solara's first
(docs/operations.md, "Settings Solara parses first"). The servers are the installed console script,
``solara run app.py``, unchanged; the valid spellings run as a few servers started side by side,
each holding one spelling of every variable.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import solara.minisettings
import solara.server.settings as server_settings
import solara.util
from fleet import APPS, free_port, server_env

from solara_persisted import startup
from solara_persisted.dev.fleet import answers_ready
from solara_persisted.errors import ConfigError

pytestmark = pytest.mark.flaky(reruns=1, reruns_delay=1)  # real processes on a shared 2-core machine

SOLARA = Path(sys.executable).with_name("solara")  # the console script pip installed with Solara
SECRET = secrets.token_urlsafe(32)
START_TIMEOUT = 90.0  # several servers start side by side on two cores
REFUSAL_TIMEOUT = 60.0

# The spellings docs/operations.md ("Value syntax", the settings tables) and the README show.
DURATIONS = {"300ms": 0.3, "0.3": 0.3, "30s": 30.0, "5m": 300.0, "24h": 86400.0, "7d": 604800.0}
BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
SIZE_PAIRS = [  # (warn, max): the warning threshold may not exceed the cap
    ("1MB", "5MB"),
    ("1000000", "5000000"),
    ("512kB", "5MiB"),
    ("0", "0"),
]
SIZES = {
    "1MB": 10**6,
    "5MB": 5 * 10**6,
    "1000000": 10**6,
    "5000000": 5 * 10**6,
    "512kB": 512_000,
    "5MiB": 5 * 2**20,
    "0": 0,
}
BOOLEAN_SETTINGS = (
    "SOLARA_STATE_ALLOW_PICKLE",
    "SOLARA_STATE_AUTO_REMOUNT",
    "SOLARA_STATE_TEST_EVICTION",  # development mode: refused in production, whatever the spelling
    "SOLARA_SESSION_HTTP_ONLY",
)
# variable -> our Settings field (None: Solara's own setting, which we only document)
OURS = {
    "SOLARA_STATE_ALLOW_PICKLE": "allow_pickle",
    "SOLARA_STATE_AUTO_REMOUNT": "auto_remount",
    "SOLARA_STATE_TEST_EVICTION": "test_eviction",
    "SOLARA_SESSION_HTTP_ONLY": "session_http_only",
    "SOLARA_STATE_CONNECT_TIMEOUT": "connect_timeout",
    "SOLARA_KERNEL_CULL_TIMEOUT": "ttl",  # SOLARA_STATE_TTL unset: the TTL follows it
    "SOLARA_STATE_BREAKER_FAILURES": "breaker_failures",
    "SOLARA_KERNEL_MAX_PER_SESSION": None,
    "SOLARA_STATE_WARN_VALUE_BYTES": "warn_value_bytes",
    "SOLARA_STATE_MAX_VALUE_BYTES": "max_value_bytes",
    "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": "bailout_storm_threshold",
}
CONNECT_TIMEOUTS = ("300ms", "0.3", "30s")  # at most 30s
SETS = len(BOOLEANS)  # every boolean variable sees every spelling once

# Typical mistakes: both Solara and our parser refuse them.
WRONG = [
    ("SOLARA_STATE_CONNECT_TIMEOUT", "fast"),
    ("SOLARA_STATE_CONNECT_TIMEOUT", "0.3sec"),
    ("SOLARA_KERNEL_CULL_TIMEOUT", "1 week"),
    ("SOLARA_STATE_WARN_VALUE_BYTES", "1.5MB"),
    ("SOLARA_STATE_MAX_VALUE_BYTES", "5 megabytes"),
    ("SOLARA_STATE_BREAKER_FAILURES", "three"),
    ("SOLARA_STATE_BREAKER_FAILURES", "3.5"),
    ("SOLARA_KERNEL_MAX_PER_SESSION", "unlimited"),
    ("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", "50%"),
    ("SOLARA_STATE_ALLOW_PICKLE", "enabled"),
    ("SOLARA_STATE_AUTO_REMOUNT", "y"),
    ("SOLARA_STATE_TEST_EVICTION", "maybe"),
    ("SOLARA_SESSION_HTTP_ONLY", "yes please"),
    ("solara_state_connect_timeout", "fast"),  # Solara reads names in any case
]


def spelling_set(index: int) -> tuple[dict[str, str], dict[str, Any]]:
    """The environment of server ``index`` and the value each variable must have: spellings rotate."""
    env: dict[str, str] = {}
    expected: dict[str, Any] = {}
    spellings = list(BOOLEANS)
    for k, name in enumerate(BOOLEAN_SETTINGS):
        raw = spellings[(index + 2 * k) % len(spellings)]
        env[name] = raw.upper() if (index + k) % 2 else raw  # any case
        expected[name] = BOOLEANS[raw]
    timeout = CONNECT_TIMEOUTS[index % len(CONNECT_TIMEOUTS)]
    cull = list(DURATIONS)[index % len(DURATIONS)]
    warn, cap = SIZE_PAIRS[index % len(SIZE_PAIRS)]
    env |= {
        "SOLARA_STATE_CONNECT_TIMEOUT": timeout,
        "SOLARA_KERNEL_CULL_TIMEOUT": cull,
        "SOLARA_STATE_WARN_VALUE_BYTES": warn,
        "SOLARA_STATE_MAX_VALUE_BYTES": cap,
        "SOLARA_STATE_BREAKER_FAILURES": "3",
        "SOLARA_KERNEL_MAX_PER_SESSION": ("100", "0")[index % 2],
        "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": "0.5",
    }
    expected |= {
        "SOLARA_STATE_CONNECT_TIMEOUT": DURATIONS[timeout],
        "SOLARA_KERNEL_CULL_TIMEOUT": DURATIONS[cull],
        "SOLARA_STATE_WARN_VALUE_BYTES": SIZES[warn],
        "SOLARA_STATE_MAX_VALUE_BYTES": SIZES[cap],
        "SOLARA_STATE_BREAKER_FAILURES": 3,
        "SOLARA_KERNEL_MAX_PER_SESSION": (100, 0)[index % 2],
        "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": 0.5,
    }
    return env, expected


@pytest.fixture(scope="module", autouse=True)
def shim_installed() -> None:
    """Everything here depends on the .pth being in this environment's site-packages."""
    pth = Path(sysconfig.get_paths()["purelib"], "solara_persisted_startup.pth")
    if not pth.is_file():
        pytest.fail(
            f"{pth} is missing: reinstall with pip install -e . (bash .ci/bootstrap does)", pytrace=False
        )


def solara_run(app: Path, env: dict[str, str], workdir: Path, *, port: int) -> subprocess.Popen[bytes]:
    """``solara run app.py`` as a user types it (development mode), stdout and stderr to files."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(SOLARA), "run", str(app), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-open", "--no-check-version"]
    with open(workdir / "stdout", "wb") as stdout, open(workdir / "stderr", "wb") as stderr:
        return subprocess.Popen(
            command,
            cwd=workdir,
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def test_every_documented_spelling_starts_solara_run_with_the_same_values(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    servers = []
    for index in range(SETS):
        env, expected = spelling_set(index)
        env |= {"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": SECRET}
        port = free_port()
        workdir = tmp_path / f"set-{index}"
        processes.append(solara_run(APPS / "settings_echo.py", env, workdir, port=port))
        servers.append((index, env, expected, port, workdir, processes[-1]))

    deadline = time.monotonic() + START_TIMEOUT
    for index, env, expected, port, workdir, process in servers:
        while not answers_ready(f"http://127.0.0.1:{port}"):
            output = (workdir / "stderr").read_text() + (workdir / "stdout").read_text()
            assert process.poll() is None, f"set {index} {env} did not start:\n{output}"
            assert time.monotonic() < deadline, f"set {index} not ready in {START_TIMEOUT:.0f} s:\n{output}"
            time.sleep(0.2)
        echoed = next(
            json.loads(line.removeprefix("SETTINGS "))
            for line in (workdir / "stdout").read_text().splitlines()
            if line.startswith("SETTINGS ")
        )
        for name, value in expected.items():
            assert echoed["solara"][name] == pytest.approx(value), f"Solara read {name}={env[name]!r}"
            if OURS[name] is not None:
                assert echoed["ours"][OURS[name]] == pytest.approx(value), f"we read {name}={env[name]!r}"
        assert "Traceback" not in (workdir / "stderr").read_text()


def test_a_value_solara_would_crash_on_is_our_one_line_refusal(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    runs = []
    for number, (name, raw) in enumerate(WRONG):
        workdir = tmp_path / f"wrong-{number}"
        env = {name: raw, "SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": SECRET}
        processes.append(solara_run(APPS / "settings_echo.py", env, workdir, port=free_port()))
        runs.append((name, raw, workdir, processes[-1]))
    for name, raw, workdir, process in runs:
        code = process.wait(timeout=REFUSAL_TIMEOUT)
        stderr = (workdir / "stderr").read_text()
        assert code == startup.EXIT_REFUSED, f"{name}={raw!r}: exit {code}\n{stderr}"
        [line] = stderr.splitlines()  # one line, no traceback
        assert line.startswith(f"{name}: {raw!r} is not a "), line
        assert ". Fix: " in line
        assert (workdir / "stdout").read_text() == "", "refused before the server starts"


def test_python_m_solara_is_a_server_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "solara", "run", str(APPS / "settings_echo.py"), "--no-open"],
        env=server_env({"SOLARA_STATE_MAX_VALUE_BYTES": "lots"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        startup.EXIT_REFUSED,
        "SOLARA_STATE_MAX_VALUE_BYTES: 'lots' is not a byte size. "
        "Fix: write a whole number of bytes, or with a unit: 512kB, 1MB, 5MiB\n",
    )


def test_outside_a_server_importing_solara_reads_our_spellings_or_raises_our_error(tmp_path: Path) -> None:
    """A notebook or a test importing Solara: the same rewrite, and our ValueError instead of Solara's."""
    script = "import solara.server.settings as s; print(s.state.connect_timeout, s.session.http_only)"
    good = subprocess.run(
        [sys.executable, "-c", script],
        env=server_env({"SOLARA_STATE_CONNECT_TIMEOUT": "300ms", "SOLARA_SESSION_HTTP_ONLY": "yes"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        check=False,
    )
    assert (good.returncode, good.stdout) == (0, "0.3 True\n"), good.stderr
    bad = subprocess.run(
        [sys.executable, "-c", script],
        env=server_env({"SOLARA_STATE_CONNECT_TIMEOUT": "fast"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1].endswith(
        "ConfigError: SOLARA_STATE_CONNECT_TIMEOUT: 'fast' is not a duration. "
        "Fix: write a number with a unit: 300ms, 30s, 5m, 24h or 7d"
    )


# -- in process: the rules against Solara's real conversions ---------------------------------------


def solara_reads(name: str, text: str) -> Any:
    """What Solara's own code makes of ``text`` for ``name`` (its settings class and converter)."""
    if name == "SOLARA_KERNEL_CULL_TIMEOUT":
        return solara.util.parse_timedelta(text)
    fields = {
        field.env.upper(): field
        for settings_class in (server_settings.State, server_settings.Session, server_settings.Kernel)
        for field in settings_class.__fields__.values()
    }
    return solara.minisettings.convert(fields[name].annotation, text)


@pytest.mark.parametrize("name", sorted(startup.SOLARA_PARSED))
def test_each_documented_spelling_becomes_text_solara_reads_as_the_same_value(name: str) -> None:
    if name in BOOLEAN_SETTINGS:
        spellings = {**BOOLEANS, **{raw.upper(): value for raw, value in BOOLEANS.items()}, " true ": True}
    elif name in ("SOLARA_STATE_CONNECT_TIMEOUT", "SOLARA_KERNEL_CULL_TIMEOUT"):
        spellings = DURATIONS
    elif name.endswith("_BYTES"):
        spellings = {**SIZES, "1mb": 10**6, "5 MiB": 5 * 2**20}
    elif name == "SOLARA_STATE_BAILOUT_STORM_THRESHOLD":
        spellings = {"0.5": 0.5, "1": 1.0}
    else:
        spellings = {"3": 3, " 7 ": 7}
    for raw, value in spellings.items():
        environ = {name: raw}
        startup.prepare_environment(environ)
        assert solara_reads(name, environ[name]) == pytest.approx(value), (name, raw, environ[name])


def test_every_non_text_solara_setting_we_document_is_covered() -> None:
    """Solara's settings classes, read now: a documented variable it converts must have a rule."""
    documented = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for settings_class in (
        server_settings.State,
        server_settings.Session,
        server_settings.Kernel,
        server_settings.MainSettings,
    ):
        for field in settings_class.__fields__.values():
            name = field.env.upper()
            converted = field.type_ is not str or name == "SOLARA_KERNEL_CULL_TIMEOUT"  # parsed at import
            if converted and f"`{name}`" in documented:
                assert name in startup.SOLARA_PARSED, (
                    f"{name} ({field.annotation}) is documented but not rewritten"
                )


def test_empty_is_unset_and_a_value_only_we_refuse_waits_for_activation() -> None:
    environ = {
        "SOLARA_STATE_AUTO_REMOUNT": " ",
        "SOLARA_STATE_BREAKER_FAILURES": "0",
        "SOLARA_STATE_URL": "x",
    }
    assert startup.prepare_environment(environ) == {"SOLARA_STATE_AUTO_REMOUNT": None}
    assert environ == {"SOLARA_STATE_BREAKER_FAILURES": "0", "SOLARA_STATE_URL": "x"}  # Solara reads 0
    with pytest.raises(ConfigError, match=r"^SOLARA_STATE_BREAKER_FAILURES: 'three' is not a whole number"):
        startup.prepare_environment({"SOLARA_STATE_BREAKER_FAILURES": "three"})


@pytest.mark.parametrize(
    ("orig_argv", "argv0", "program"),
    [
        (["python", "-m", "solara", "run", "app.py"], "-m", "solara"),  # while runpy imports the package
        (["python", "-X", "importtime", "-muvicorn", "app:app"], "/x/uvicorn/__main__.py", "uvicorn"),
        (["/venv/bin/python", "/venv/bin/solara", "run", "app.py"], "/venv/bin/solara", "solara"),
        (
            ["/venv/bin/python", "/venv/bin/gunicorn", "-k", "uvicorn.workers.UvicornWorker"],
            "/venv/bin/gunicorn",
            "gunicorn",
        ),
        (["python", "-m", "pytest"], "/x/pytest/__main__.py", None),
        (["python", "-c", "import solara"], "-c", None),
        (["python", "serve.py"], "serve.py", None),
    ],
)
def test_server_program(
    monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], argv0: str, program: str | None
) -> None:
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    monkeypatch.setattr(sys, "argv", [argv0])
    assert startup.server_program() == program
