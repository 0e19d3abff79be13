"""Settings: the operations guide's defaults, parsing, and every start-up refusal."""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from solara_persisted.config import (
    DURATION_BOUNDS,
    KNOWN_SETTINGS,
    MIN_SECRET_BITS,
    PLACEHOLDER_SECRETS,
    URL_SCHEMES,
    Settings,
    secret_bits,
    unknown_settings,
)
from solara_persisted.errors import ConfigError

GOOD = "k3y-Generated-0123456789abcdef"
HTTP_ONLY_WARNING = "SOLARA_SESSION_HTTP_ONLY is off while state persistence is on"


def enabled(**overrides: object) -> Settings:
    """A valid, enabled configuration with some settings replaced."""
    options: dict[str, object] = {
        "backend": "redis",
        "url": "redis://localhost:6379/0",
        "secret_keys": (GOOD,),
        "session_http_only": True,
    }
    options.update(overrides)
    return Settings(**options)  # type: ignore[arg-type]


def refused(settings: Settings, setting: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings.validate()
    error = caught.value
    assert error.setting == setting
    assert str(error).startswith(f"{setting}: ")
    assert "Fix: " in str(error)
    return error


# -- defaults -------------------------------------------------------------------------------


def test_defaults_are_the_operations_guides() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    # Stated in the guide: off unless a backend is set; TTL = kernel.cull_timeout (24h);
    # orphan cull 5m; warn at 1 MB, skip above 5 MB; pickle off; HTTP-only cookie not forced.
    assert settings.backend == "" and not settings.enabled
    assert settings.ttl == 24 * 3600
    assert settings.orphan_cull_timeout == 5 * 60
    assert settings.warn_value_bytes == 1_000_000
    assert settings.max_value_bytes == 5_000_000
    assert settings.max_session_bytes == 10_000_000
    assert settings.max_session_keys == 1000
    assert settings.allow_pickle is False
    assert settings.session_http_only is False
    # The full configuration reference (Solara's state settings): same values.
    assert settings.url == ""
    assert settings.secret_keys == ()
    assert settings.prefix == "solara:"
    assert settings.flush_debounce == pytest.approx(0.3)
    assert settings.connect_timeout == pytest.approx(0.3)
    assert settings.breaker_failures == 3
    assert settings.breaker_window == 30
    assert settings.schema_tag == ""
    assert settings.bailout_storm_threshold == 0.5
    assert settings.auto_remount is None
    assert settings.test_eviction is False
    assert settings.resourcez_token == ""
    assert settings.production is True


def test_disabled_defaults_validate_without_warnings() -> None:
    assert Settings().validate() == []


# -- parsing --------------------------------------------------------------------------------


def test_every_setting_is_read() -> None:
    settings = Settings.from_env(
        {
            "SOLARA_STATE_BACKEND": " Redis ",
            "SOLARA_STATE_URL": "rediss://cache:6380/2",
            "SOLARA_STATE_SECRET_KEYS": f" {GOOD} , old-key-0123456789abcdef,, ",
            "SOLARA_STATE_ALLOW_PICKLE": "TRUE",
            "SOLARA_STATE_TTL": "2h",
            "SOLARA_STATE_ORPHAN_CULL_TIMEOUT": "90s",
            "SOLARA_STATE_PREFIX": "app1:",
            "SOLARA_STATE_FLUSH_DEBOUNCE": "250ms",
            "SOLARA_STATE_CONNECT_TIMEOUT": "1.5s",
            "SOLARA_STATE_BREAKER_FAILURES": "5",
            "SOLARA_STATE_BREAKER_WINDOW": "1m",
            "SOLARA_STATE_SCHEMA_TAG": "v7",
            "SOLARA_STATE_WARN_VALUE_BYTES": "512kB",
            "SOLARA_STATE_MAX_VALUE_BYTES": "2MiB",
            "SOLARA_STATE_MAX_SESSION_BYTES": "20MB",
            "SOLARA_STATE_MAX_SESSION_KEYS": "250",
            "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": "0.25",
            "SOLARA_STATE_AUTO_REMOUNT": "off",
            "SOLARA_STATE_TEST_EVICTION": "yes",
            "SOLARA_SESSION_HTTP_ONLY": "1",
            "SOLARA_RESOURCEZ_TOKEN": " tok ",
            "SOLARA_MODE": "development",
        }
    )
    assert settings == Settings(
        backend="redis",
        url="rediss://cache:6380/2",
        secret_keys=(GOOD, "old-key-0123456789abcdef"),
        allow_pickle=True,
        ttl=7200.0,
        orphan_cull_timeout=90.0,
        prefix="app1:",
        flush_debounce=0.25,
        connect_timeout=1.5,
        breaker_failures=5,
        breaker_window=60.0,
        schema_tag="v7",
        warn_value_bytes=512_000,
        max_value_bytes=2 * 2**20,
        max_session_bytes=20_000_000,
        max_session_keys=250,
        bailout_storm_threshold=0.25,
        auto_remount=False,
        test_eviction=True,
        session_http_only=True,
        resourcez_token="tok",
        production=False,
    )


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("300ms", 0.3),
        ("45", 45),
        ("45s", 45),
        ("1.5s", 1.5),
        ("5m", 300),
        ("24h", 86400),
        ("7d", 604800),
        (" 2 m ", 120),
    ],
)
def test_durations(raw: str, seconds: float) -> None:
    assert Settings.from_env({"SOLARA_STATE_ORPHAN_CULL_TIMEOUT": raw}).orphan_cull_timeout == pytest.approx(
        seconds
    )


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("0", 0),
        ("1000", 1000),
        ("1MB", 10**6),
        ("1mb", 10**6),
        ("512kB", 512_000),
        ("5MiB", 5 * 2**20),
        ("1GB", 10**9),
    ],
)
def test_sizes(raw: str, size: int) -> None:
    assert Settings.from_env({"SOLARA_STATE_MAX_VALUE_BYTES": raw}).max_value_bytes == size


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env({"SOLARA_STATE_ALLOW_PICKLE": raw}).allow_pickle is value


def test_ttl_falls_back_to_the_kernel_cull_timeout() -> None:
    assert Settings.from_env({"SOLARA_KERNEL_CULL_TIMEOUT": "2h"}).ttl == 7200
    assert Settings.from_env({"SOLARA_KERNEL_CULL_TIMEOUT": "2h", "SOLARA_STATE_TTL": "30m"}).ttl == 1800


def test_empty_values_keep_the_defaults() -> None:
    names = [
        "TTL",
        "ORPHAN_CULL_TIMEOUT",
        "FLUSH_DEBOUNCE",
        "CONNECT_TIMEOUT",
        "BREAKER_WINDOW",
        "BREAKER_FAILURES",
    ]
    names += [
        "WARN_VALUE_BYTES",
        "MAX_VALUE_BYTES",
        "MAX_SESSION_BYTES",
        "MAX_SESSION_KEYS",
        "BAILOUT_STORM_THRESHOLD",
        "AUTO_REMOUNT",
        "TEST_EVICTION",
    ]
    assert Settings.from_env({f"SOLARA_STATE_{name}": "  " for name in names}) == Settings()


def test_mode_is_production_unless_exactly_development() -> None:
    assert Settings.from_env({}).production is True
    assert Settings.from_env({"SOLARA_MODE": "production"}).production is True
    assert Settings.from_env({"SOLARA_MODE": "development"}).production is False


@pytest.mark.parametrize(
    "raw", ["", "prod", "dev", "staging", "Production", " production ", "DEVELOPMENT", "production\n"]
)
def test_a_mode_solara_does_not_honour_is_refused(raw: str) -> None:
    # Solara 1.64 compares SOLARA_MODE verbatim: any other value silently runs its development
    # paths, while it used to look like production (or development) to us.
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SOLARA_MODE": raw})
    assert caught.value.setting == "SOLARA_MODE"
    assert repr(raw) in str(caught.value)
    assert "Fix: write exactly production or development" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("SOLARA_STATE_ALLOW_PICKLE", "maybe"),
        ("SOLARA_STATE_TTL", "forever"),
        ("SOLARA_KERNEL_CULL_TIMEOUT", "a day"),
        ("SOLARA_STATE_ORPHAN_CULL_TIMEOUT", "-5m"),
        ("SOLARA_STATE_FLUSH_DEBOUNCE", "300 msec"),
        ("SOLARA_STATE_CONNECT_TIMEOUT", "1h30m"),
        ("SOLARA_STATE_BREAKER_WINDOW", "30 seconds"),
        ("SOLARA_STATE_BREAKER_FAILURES", "three"),
        ("SOLARA_STATE_BREAKER_FAILURES", "0"),
        ("SOLARA_STATE_BREAKER_FAILURES", "2.5"),
        ("SOLARA_STATE_WARN_VALUE_BYTES", "1.5MB"),
        ("SOLARA_STATE_MAX_VALUE_BYTES", "5 megabytes"),
        ("SOLARA_STATE_MAX_VALUE_BYTES", "-1"),
        ("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", "half"),
        ("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", "0"),
        ("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", "1.5"),
        ("SOLARA_STATE_BAILOUT_STORM_THRESHOLD", "nan"),
        ("SOLARA_STATE_TTL", "9" * 400),  # float() of it is inf
        ("SOLARA_STATE_MAX_SESSION_BYTES", "10 megabytes"),
        ("SOLARA_STATE_MAX_SESSION_BYTES", "-1"),
        ("SOLARA_STATE_MAX_SESSION_KEYS", "0"),
        ("SOLARA_STATE_MAX_SESSION_KEYS", "lots"),
        ("SOLARA_STATE_AUTO_REMOUNT", "sometimes"),
        ("SOLARA_STATE_TEST_EVICTION", "2"),
        ("SOLARA_SESSION_HTTP_ONLY", "enabled"),
    ],
)
def test_parse_errors_name_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    assert caught.value.setting == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert "Fix: " in str(caught.value)
    assert raw in str(caught.value)  # the offending value is quoted back


# -- start-up refusals ----------------------------------------------------------------------


def test_a_valid_enabled_configuration_passes() -> None:
    assert enabled().validate() == []
    assert enabled(backend="memory", url="").validate() == []


def test_unknown_backend() -> None:
    error = refused(enabled(backend="memcached"), "SOLARA_STATE_BACKEND")
    assert "'memcached'" in str(error) and "memory, redis" in str(error)


def test_backend_without_secrets() -> None:
    refused(enabled(secret_keys=()), "SOLARA_STATE_SECRET_KEYS")
    from_env = Settings.from_env({"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": " , "})
    error = refused(from_env, "SOLARA_STATE_SECRET_KEYS")
    assert "token_urlsafe" in str(error)


@pytest.mark.parametrize("placeholder", [*sorted(PLACEHOLDER_SECRETS), "Change Me", "CHANGEME"])
def test_placeholder_secrets(placeholder: str) -> None:
    error = refused(enabled(secret_keys=(placeholder,)), "SOLARA_STATE_SECRET_KEYS")
    assert "placeholder" in str(error) or "too short" in str(error)


def test_a_weak_key_anywhere_in_the_ring_is_refused() -> None:
    error = refused(enabled(secret_keys=(GOOD, "short-old-key")), "SOLARA_STATE_SECRET_KEYS")
    assert "13 characters" in str(error) and "minimum 16" in str(error)
    refused(enabled(secret_keys=(GOOD, "paste-the-generated-secret-here")), "SOLARA_STATE_SECRET_KEYS")
    # Sixteen characters used to be enough, whatever they were.
    error = refused(enabled(secret_keys=(GOOD, "x" * 16)), "SOLARA_STATE_SECRET_KEYS")
    assert "key 2 of 2 is guessable" in str(error)


WEAK_SECRETS = [
    "aaaaaaaaaaaaaaaa",
    "password12345678",
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789012345678901234567",
    "x" * 32,
    "changemechangemechangeme",
    "secretsecretsecret1234",
    "P@ssw0rdP@ssw0rd",
    "Password123!Password123!",
    "qwertyuiopasdfghjkl",
    "9876543210zyxwvutsrq",
    "abababababababababab",
    "old-key-0123456789abcdef",
]
GENERATORS: dict[str, Callable[[], str]] = {
    "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "token_hex(16)": lambda: secrets.token_hex(16),
    "token_hex(32)": lambda: secrets.token_hex(32),
    "openssl rand -base64 32": lambda: base64.b64encode(os.urandom(32)).decode(),
}


@pytest.mark.parametrize("secret", WEAK_SECRETS)
def test_low_entropy_secrets_are_refused(secret: str) -> None:
    assert len(secret) >= 16 and secret.lower() not in PLACEHOLDER_SECRETS  # only the estimator stops it
    assert secret_bits(secret) < MIN_SECRET_BITS
    error = refused(enabled(secret_keys=(secret,)), "SOLARA_STATE_SECRET_KEYS")
    assert "guessable" in str(error) and f"minimum {MIN_SECRET_BITS}" in str(error)
    assert "Fix: a generated token is the supported form" in str(error)
    assert "secrets.token_urlsafe(32)" in str(error)
    assert secret not in str(error)  # a key is never echoed
    refused(enabled(backend="memory", url="", secret_keys=(GOOD, secret)), "SOLARA_STATE_SECRET_KEYS")


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_generated_token_passes(generator: str) -> None:
    # The estimator must never refuse what the docs tell people to generate.
    tokens = [GENERATORS[generator]() for _ in range(2000)]
    lowest = min(tokens, key=secret_bits)
    assert secret_bits(lowest) >= MIN_SECRET_BITS + 32, lowest  # and with a wide margin
    for token in tokens:
        assert enabled(secret_keys=(token,)).validate() == []
    assert enabled(allow_pickle=True, secret_keys=tuple(tokens[:3])).validate() == []


def test_the_estimator_is_explainable() -> None:
    # One symbol per common word, run or repeat; bits = symbols x log2(alphabet of the classes present).
    assert secret_bits("aaaaaaaaaaaaaaaa") == pytest.approx(1 * 4.70, abs=0.01)  # one run, 26 letters
    assert secret_bits("password12345678") == pytest.approx(2 * 5.17, abs=0.01)  # word + run, 36
    assert secret_bits("Kq7#") == pytest.approx(4 * 6.57, abs=0.01)  # four symbols from 95
    assert secret_bits("") == 0.0


@pytest.mark.parametrize("secrets", [(), ("change me",), ("tooshort",), (GOOD, "changeme"), ("x" * 32,)])
def test_pickle_with_missing_or_default_secrets(secrets: tuple[str, ...]) -> None:
    # Refused before anything else, and even with no backend: pickle plus a known key is code execution.
    error = refused(Settings(allow_pickle=True, secret_keys=secrets), "SOLARA_STATE_ALLOW_PICKLE")
    assert "empty, a default or guessable" in str(error) and "token_urlsafe" in str(error)
    refused(enabled(allow_pickle=True, secret_keys=secrets), "SOLARA_STATE_ALLOW_PICKLE")


def test_pickle_with_real_secrets_is_allowed() -> None:
    assert enabled(allow_pickle=True).validate() == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "needs a URL"),
        ("localhost:6379", "not a supported URL"),
        ("http://localhost:6379", "not a supported URL"),
        ("redis:/localhost", "not a supported URL"),
        ("redis://", "names no host"),
        ("unix://", "names no host"),
    ],
)
def test_malformed_redis_urls(url: str, problem: str) -> None:
    assert problem in str(refused(enabled(url=url), "SOLARA_STATE_URL"))


@pytest.mark.parametrize("scheme", URL_SCHEMES)
def test_supported_url_schemes(scheme: str) -> None:
    target = "/run/redis.sock" if scheme == "unix" else "localhost:26379/mymaster"
    assert enabled(url=f"{scheme}://{target}").validate() == []
    assert enabled(url=f"{scheme.upper()}://{target}").validate() == []


def test_the_memory_backend_needs_no_url() -> None:
    assert enabled(backend="memory", url="").validate() == []


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("flush_debounce", "SOLARA_STATE_FLUSH_DEBOUNCE"),
        ("connect_timeout", "SOLARA_STATE_CONNECT_TIMEOUT"),
        ("ttl", "SOLARA_STATE_TTL"),
    ],
)
def test_zero_durations(field: str, variable: str) -> None:
    refused(enabled(**{field: 0.0}), variable)
    # The same through the environment: "0" parses, then validation refuses it.
    settings = Settings.from_env(
        {"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": GOOD, variable: "0ms"}
    )
    refused(settings, variable)


@pytest.mark.parametrize(
    ("field", "variable", "above", "at_bound"),
    [
        ("ttl", "SOLARA_STATE_TTL", "31d", "30d"),
        ("orphan_cull_timeout", "SOLARA_STATE_ORPHAN_CULL_TIMEOUT", "8d", "7d"),
        ("flush_debounce", "SOLARA_STATE_FLUSH_DEBOUNCE", "61s", "60s"),
        ("connect_timeout", "SOLARA_STATE_CONNECT_TIMEOUT", "31", "30"),
        ("breaker_window", "SOLARA_STATE_BREAKER_WINDOW", "61m", "1h"),
    ],
)
def test_durations_have_upper_bounds(field: str, variable: str, above: str, at_bound: str) -> None:
    base = {
        "SOLARA_STATE_BACKEND": "memory",
        "SOLARA_STATE_SECRET_KEYS": GOOD,
        "SOLARA_SESSION_HTTP_ONLY": "1",
    }
    assert Settings.from_env({**base, variable: at_bound}).validate() == []
    settings = Settings.from_env({**base, variable: above})
    error = refused(settings, variable)
    _, bound, bound_text, _ = DURATION_BOUNDS[field]
    assert f"{getattr(settings, field):g} s" in str(error)  # the value
    assert f"{bound:g} s ({bound_text})" in str(error)  # and the bound


def test_the_kernel_cull_timeout_fallback_is_bounded_too() -> None:
    settings = Settings.from_env(
        {
            "SOLARA_STATE_BACKEND": "memory",
            "SOLARA_STATE_SECRET_KEYS": GOOD,
            "SOLARA_KERNEL_CULL_TIMEOUT": "60d",
        }
    )
    refused(settings, "SOLARA_STATE_TTL")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -1.0])
@pytest.mark.parametrize("field", DURATION_BOUNDS)
def test_non_finite_or_negative_durations(field: str, value: float) -> None:
    # NaN passes every comparison, so "<= 0" alone would let it through.
    refused(enabled(**{field: value}), DURATION_BOUNDS[field][0])


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "*",
        "app*:",
        "app?:",
        "app[1]:",
        "app]:",
        "app\\:",
        "app 1:",
        "app\t:",
        "app:\n",
        "app\x00:",
        "app\x7f:",
        "app\u200b:",  # zero-width space: not printable
        "{app:",
        "app}:",
        "}app{:",
        "{a{b}}:",
        "a" * 65,
    ],
)
def test_unsafe_prefixes_are_refused(prefix: str) -> None:
    error = refused(enabled(prefix=prefix), "SOLARA_STATE_PREFIX")
    assert "Fix: " in str(error)


@pytest.mark.parametrize("prefix", ["solara:", "app1:", "my-app.v2_state:", "{app1}:", "{a}:{b}:", "a" * 64])
def test_safe_prefixes_pass(prefix: str) -> None:
    assert enabled(prefix=prefix).validate() == []


@pytest.mark.parametrize("raw", ["", " ", "\t  "])
def test_an_explicitly_empty_prefix_is_refused_not_defaulted(raw: str) -> None:
    settings = Settings.from_env(
        {"SOLARA_STATE_BACKEND": "memory", "SOLARA_STATE_SECRET_KEYS": GOOD, "SOLARA_STATE_PREFIX": raw}
    )
    assert "empty or only whitespace" in str(refused(settings, "SOLARA_STATE_PREFIX"))
    assert Settings.from_env({}).prefix == "solara:"


def test_session_budgets() -> None:
    assert enabled(max_session_bytes=0).validate() == []  # 0: no byte budget
    assert enabled(max_session_keys=1).validate() == []
    refused(enabled(max_session_bytes=-1), "SOLARA_STATE_MAX_SESSION_BYTES")
    refused(enabled(max_session_keys=0), "SOLARA_STATE_MAX_SESSION_KEYS")
    refused(enabled(max_session_keys=10**9), "SOLARA_STATE_MAX_SESSION_KEYS")
    assert Settings.from_env({"SOLARA_STATE_MAX_SESSION_BYTES": "0"}).max_session_bytes == 0
    assert Settings.from_env({"SOLARA_STATE_MAX_SESSION_BYTES": "5MiB"}).max_session_bytes == 5 * 2**20


def test_warn_cap_above_the_hard_cap() -> None:
    error = refused(enabled(warn_value_bytes=6_000_000), "SOLARA_STATE_WARN_VALUE_BYTES")
    assert "6000000" in str(error) and "5000000" in str(error)
    assert enabled(warn_value_bytes=6_000_000, max_value_bytes=0).validate() == []  # 0 disables the cap
    assert enabled(warn_value_bytes=5_000_000).validate() == []


def test_test_eviction_is_refused_in_production_only() -> None:
    refused(enabled(test_eviction=True), "SOLARA_STATE_TEST_EVICTION")
    assert enabled(test_eviction=True, production=False).validate() == []


def test_validation_of_a_disabled_backend_ignores_backend_settings() -> None:
    assert Settings(url="http://nonsense", flush_debounce=0.0, test_eviction=True, prefix="").validate() == []


@pytest.mark.parametrize(
    "token", ["x", "tok", "short-token", "a" * 32, "password12345678", "0123456789abcdef"]
)
def test_a_guessable_resourcez_token_is_refused(token: str) -> None:
    # It unlocks raw key names on /resourcez, with or without persistence.
    for settings in (enabled(resourcez_token=token), Settings(resourcez_token=token)):
        error = refused(settings, "SOLARA_RESOURCEZ_TOKEN")
        assert "token_urlsafe" in str(error)
        assert repr(token) not in str(error)


def test_a_generated_resourcez_token_or_none_passes() -> None:
    assert enabled(resourcez_token=secrets.token_urlsafe(32)).validate() == []
    assert enabled(resourcez_token=secrets.token_hex(16)).validate() == []
    assert enabled(resourcez_token="").validate() == []
    assert Settings.from_env({"SOLARA_RESOURCEZ_TOKEN": "  "}).validate() == []  # empty: no token


# -- warnings -------------------------------------------------------------------------------


def test_http_only_off_while_persistence_is_on_warns() -> None:
    [warning] = enabled(session_http_only=False).validate()
    assert warning.startswith(HTTP_ONLY_WARNING)
    assert "SOLARA_SESSION_HTTP_ONLY=true" in warning
    assert enabled(session_http_only=True).validate() == []
    assert Settings(session_http_only=False).validate() == []  # persistence off: nothing to protect


# -- unknown settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("SOLARA_STATE_TTLL", "SOLARA_STATE_TTL"),
        ("SOLARA_STATE_SECRET_KEY", "SOLARA_STATE_SECRET_KEYS"),
        ("SOLARA_STATE_MAX_SESION_KEYS", "SOLARA_STATE_MAX_SESSION_KEYS"),
        ("SOLARA_STATE_BACKEN", "SOLARA_STATE_BACKEND"),
        ("SOLARA_STATE_ORPHAN_TIMEOUT", "SOLARA_STATE_ORPHAN_CULL_TIMEOUT"),
    ],
)
def test_an_unknown_setting_names_the_closest_known_one(name: str, suggestion: str) -> None:
    assert unknown_settings({name: "1"}) == [
        f"{name} is not a setting solara-persisted knows; did you mean {suggestion}?"
    ]


def test_unknown_settings() -> None:
    assert unknown_settings({}) == []
    environ = {name: "1" for name in KNOWN_SETTINGS}
    environ |= {
        "SOLARA_MODE": "production",
        "SOLARA_SESSION_HTTP_ONLY": "1",
        "PATH": "/bin",
        "SOLARA_STATES": "",
    }
    assert unknown_settings(environ) == []
    [warning] = unknown_settings({"solara_state_ttl": "1h"})
    assert warning.endswith("names are case-sensitive; did you mean SOLARA_STATE_TTL?")
    [warning] = unknown_settings({"SOLARA_STATE_ZQXJ": "1"})
    assert warning.startswith("SOLARA_STATE_ZQXJ is not a setting") and "did you mean" not in warning
    assert (
        len(unknown_settings({"SOLARA_STATE_TTLL": "", "SOLARA_STATE_URLL": "", "SOLARA_STATE_TTL": ""})) == 2
    )


def test_known_settings_are_exactly_what_from_env_reads() -> None:
    read: list[str] = []

    class Recording(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            read.append(key)
            return super().get(key, default)

    Settings.from_env(Recording())
    assert sorted(name for name in read if name.startswith("SOLARA_STATE_")) == sorted(KNOWN_SETTINGS)
    assert len(set(KNOWN_SETTINGS)) == len(KNOWN_SETTINGS)


def test_every_state_variable_the_package_names_is_known() -> None:
    package = Path(__file__).parent.parent / "solara_persisted"
    named = {
        name
        for path in package.rglob("*.py")
        for name in re.findall(r"SOLARA_STATE_[A-Z_]*[A-Z](?![\w*])", path.read_text(encoding="utf-8"))
    }
    assert named <= set(KNOWN_SETTINGS), named - set(KNOWN_SETTINGS)


def test_the_operations_guide_documents_every_setting() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    assert [name for name in KNOWN_SETTINGS if f"| `{name}` |" not in guide] == []
