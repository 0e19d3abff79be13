"""A refused start is one line on stderr and exit code 3: under ``solara run`` and plain uvicorn.

Real processes, started side by side: the console scripts ``solara run app.py`` and ``uvicorn
embedded:app`` (our package activated while the app is imported, and from the app's own Starlette
lifespan), each with one mistake a new user makes. No traceback, no Starlette "Application startup
failed", nothing but ``<VARIABLE>: <problem>. Fix: <fix>``.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fleet import APPS, free_port, server_env

from solara_persisted import solara_integration
from solara_persisted.config import GENERATE_SECRET, Settings
from solara_persisted.errors import ConfigError
from solara_persisted.startup import EXIT_REFUSED

pytestmark = pytest.mark.flaky(reruns=1, reruns_delay=1)  # real processes on a shared 2-core machine

BIN = Path(sys.executable).parent
SECRET = secrets.token_urlsafe(32)
TIMEOUT = 90.0  # a refusal comes once the app is imported; several start side by side on two cores

SOLARA_RUN_REFUSALS = [
    (
        {"SOLARA_STATE_BACKEND": "redis", "SOLARA_STATE_URL": "redis://127.0.0.1:6379/0"},
        "SOLARA_STATE_SECRET_KEYS: a state backend is enabled but no secret key is set. "
        f"Fix: generate one with {GENERATE_SECRET} and give every instance the same value",
    ),
    (
        {"SOLARA_STATE_BACKEND": "reddis", "SOLARA_STATE_SECRET_KEYS": SECRET},
        "SOLARA_STATE_BACKEND: unknown backend 'reddis'. Fix: did you mean redis? Use one of: memory, redis",
    ),
    (
        {"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": "changeme"},
        "SOLARA_STATE_SECRET_KEYS: 'changeme' is a placeholder, not a secret. "
        f"Fix: replace it with a generated one: {GENERATE_SECRET}",
    ),
    (
        {"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": SECRET, "SOLARA_STATE_TTL": "abc"},
        "SOLARA_STATE_TTL: 'abc' is not a duration. Fix: write a number with a unit: 300ms, 30s, 5m, 24h or 7d",
    ),
    (  # Solara reads 0, so it is ours to refuse when we activate
        {
            "SOLARA_STATE_BACKEND": "memory",
            "SOLARA_STATE_SECRET_KEYS": SECRET,
            "SOLARA_STATE_BREAKER_FAILURES": "0",
        },
        "SOLARA_STATE_BREAKER_FAILURES: 0 is below the minimum 1. Fix: write an integer >= 1",
    ),
    (  # the start-up shim gives Solara 45.0; our bound refuses it, naming what was meant
        {
            "SOLARA_STATE_BACKEND": "memory",
            "SOLARA_STATE_SECRET_KEYS": SECRET,
            "SOLARA_STATE_CONNECT_TIMEOUT": "45s",
        },
        "SOLARA_STATE_CONNECT_TIMEOUT: 45 s is above the upper bound of 30 s (30s). Fix: use at most 30s, e.g. 300ms",
    ),
]


def launch(
    command: list[str], env: dict[str, str], workdir: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "stdout", "wb") as stdout, open(workdir / "stderr", "wb") as stderr:
        return subprocess.Popen(
            command,
            cwd=cwd or workdir,
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def refused(process: subprocess.Popen[bytes], workdir: Path) -> list[str]:
    """The stderr lines of a process that must exit with the refusal code."""
    code = process.wait(timeout=TIMEOUT)
    stderr = (workdir / "stderr").read_text()
    assert code == EXIT_REFUSED, f"exit {code}:\n{stderr}"
    assert "Traceback" not in stderr and "Application startup failed" not in stderr, stderr
    return stderr.splitlines()


def test_solara_run_and_uvicorn_refuse_in_one_line(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    runs = []
    for number, (env, line) in enumerate(SOLARA_RUN_REFUSALS):
        workdir = tmp_path / f"solara-{number}"
        command = [str(BIN / "solara"), "run", str(APPS / "persisted_counter.py"), "--production"]
        command += ["--host", "127.0.0.1", "--port", str(free_port()), "--no-open", "--no-check-version"]
        processes.append(launch(command, env, workdir))
        runs.append((processes[-1], workdir, line, "solara run"))

    uvicorn = [str(BIN / "uvicorn"), "embedded:app", "--host", "127.0.0.1"]
    embedded = {"SOLARA_APP": str(APPS / "persisted_counter.py")}
    # activated while uvicorn imports the app (it imports solara.server.starlette, then us)
    workdir = tmp_path / "uvicorn-import"
    env = {**embedded, "SOLARA_STATE_BACKEND": "reddis", "SOLARA_STATE_SECRET_KEYS": SECRET}
    processes.append(launch([*uvicorn, "--port", str(free_port())], env, workdir, cwd=APPS))
    runs.append((processes[-1], workdir, SOLARA_RUN_REFUSALS[1][1], "uvicorn, at import"))
    # activated by solara_integration.activate() in the app's lifespan (no backend at import)
    workdir = tmp_path / "uvicorn-lifespan"
    env = {**embedded, "SOLARA_MODE": "Production"}
    processes.append(launch([*uvicorn, "--port", str(free_port())], env, workdir, cwd=APPS))
    mode_line = (
        "SOLARA_MODE: 'Production' is not a mode: Solara compares the value verbatim and treats anything but "
        "'production' as development (raw key names on /resourcez, test eviction allowed). Fix: write exactly "
        "production or development (lower case, no spaces); unset means production"
    )
    runs.append((processes[-1], workdir, mode_line, "uvicorn, in the lifespan"))

    for process, workdir, line, how in runs:
        lines = refused(process, workdir)
        if how == "uvicorn, in the lifespan":  # after uvicorn's and our own INFO lines
            assert lines[-1] == line, "\n".join(lines)
            assert all(other.startswith("INFO:") for other in lines[:-1]), "\n".join(lines)
        else:
            assert lines == [line], f"{how}:\n" + "\n".join(lines)


def test_outside_a_server_process_activate_raises() -> None:
    """Under a test runner (or a notebook, or your own launcher) a refusal stays an exception."""
    with pytest.raises(
        ConfigError, match=r"^SOLARA_STATE_BACKEND: unknown backend 'memroy'. Fix: did you mean memory\?"
    ):
        solara_integration.activate(Settings(backend="memroy", secret_keys=(SECRET,)))
    assert solara_integration.engine() is None


@pytest.mark.parametrize(
    ("backend", "url", "fix"),
    [
        ("reddis", "", "did you mean redis? Use one of: memory, redis"),
        ("Memory ", "", None),  # read as memory: case and spaces do not matter
        ("postgres", "", "use one of: memory, redis"),  # nothing close: no guess
        ("redis", "reddis://localhost:6379/0", "did you mean redis://? Use one of the schemes redis://, "),
        ("redis", "http://localhost:6379/0", "use one of the schemes redis://, "),
    ],
)
def test_near_misses_are_named(backend: str, url: str, fix: str | None) -> None:
    environ = {"SOLARA_STATE_BACKEND": backend, "SOLARA_STATE_URL": url, "SOLARA_STATE_SECRET_KEYS": SECRET}
    settings = Settings.from_env(environ)
    if fix is None:
        settings.validate()
        return
    with pytest.raises(ConfigError) as refusal:
        settings.validate()
    assert refusal.value.fix.startswith(fix)
