"""The monitoring kit in deploy/: Prometheus alert rules, their promtool unit tests, the scrape
config and the Grafana dashboard.

promtool and prometheus come from Debian's ``prometheus`` package (.ci/bootstrap installs it). The
tests skip without it only outside CI; with CI=true a missing promtool fails them. Every query a
dashboard panel or an alert runs is parsed by a real Prometheus server started on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import REPO, free_port

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "solara-persisted.json"
OPERATIONS = REPO / "docs" / "operations.md"

MISSING = (
    "promtool not found on PATH: install Debian's prometheus package (apt-get install prometheus), "
    "as bash .ci/bootstrap test does"
)
pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CI") != "true",
    reason=MISSING,
)

COMMAND_TIMEOUT = 60.0
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

# The metric families /metrics serves (solara_persisted/metrics.py), plus redis_exporter's two. A
# query that names anything else parses fine, then shows an empty panel or an alert that never
# fires, so the names are checked.
COUNTERS = {
    "solara_state_restores_total",
    "solara_state_flushes_total",
    "solara_state_breaker_transitions_total",
    "solara_state_superseded_closes_total",
    "solara_state_superseded_while_connected_total",
    "solara_state_synced_fields_total",
    "solara_state_synced_bytes_total",
    "solara_state_restored_bytes_total",
    "solara_state_dropped_values_total",
    "solara_state_key_synced_fields_total",
    "solara_state_key_synced_bytes_total",
    "solara_state_table_labels_dropped_total",
}
GAUGES = {
    "solara_state_status",
    "solara_state_breaker_state",
    "solara_state_backend_last_ok_age_seconds",
    "solara_state_key_ring_mismatch",
    "solara_state_fleet_key_rings",
    "solara_state_draining",
}
HISTOGRAMS = {
    "solara_state_restore_duration_seconds",
    "solara_state_flush_duration_seconds",
    "solara_state_envelope_bytes",
}
KNOWN_METRICS = (
    COUNTERS
    | GAUGES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | {"redis_memory_used_bytes", "redis_memory_max_bytes"}
)
METRIC_NAME = re.compile(r"\b(?:solara_state|redis)_[a-z0-9_]+\b")

# Grafana's built-in interval variables, as a query would see them with a 1h time range
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

K8S_SD_MISSING = "field kubernetes_sd_configs not found"


# --- helpers -----------------------------------------------------------------------------------


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(MISSING, pytrace=False)
    return path


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=cwd or REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _alert_cases() -> list[dict]:
    return [
        case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])
    ]


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _query_panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested ones included; rows themselves only lay panels out."""
    found = []
    for panel in dashboard["panels"]:
        found.extend(panel.get("panels", []))
        if panel.get("type") != "row":
            found.append(panel)
    return found


def _dashboard_variables(dashboard: dict) -> dict[str, str]:
    """The dashboard's own variables with the value a query sees for "All" (a regex)."""
    return {var["name"]: ".+" for var in dashboard["templating"]["list"] if var["type"] != "datasource"}


def grafana_to_promql(expr: str, variables: dict[str, str]) -> str:
    """The query Grafana sends: its variables replaced (built-ins by a fixed interval)."""

    def substitute(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        value = GRAFANA_BUILTINS.get(name, variables.get(name))
        assert value is not None, f"{expr!r} uses ${name}, which the dashboard does not define"
        return value

    return GRAFANA_VARIABLE.sub(substitute, expr)


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = _dashboard()
    variables = _dashboard_variables(dashboard)
    return [
        (f"{panel['title']}:{target.get('refId', '?')}", grafana_to_promql(target["expr"], variables))
        for panel in _query_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def _all_queries() -> list[tuple[str, str]]:
    alerts = [(f"alert:{rule['alert']}", rule["expr"]) for rule in _alert_rules()]
    return alerts + [(f"panel:{name}", expr) for name, expr in _dashboard_queries()]


# --- promtool ----------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", ALERTS.relative_to(REPO))
    assert result.returncode == 0, _output(result)
    assert f"SUCCESS: {len(_alert_rules())} rules found" in result.stdout, _output(result)


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", ALERT_TESTS.relative_to(REPO))
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout, _output(result)


# Each fault must make `promtool test rules` fail: a threshold, a metric name typo (which still
# parses), and a dropped guard that only a must-stay-quiet case notices.
PLANTED_FAULTS = {
    "bailout threshold 5% -> 50%": (") > 0.05\n", ") > 0.5\n"),
    "metric name typo": ("solara_state_superseded_while_connected_total", "solara_state_superseded_while_connect_total"),
    "maxmemory=0 guard dropped": ("(redis_memory_max_bytes > 0)", "redis_memory_max_bytes"),
}


@pytest.mark.parametrize("fault", list(PLANTED_FAULTS))
def test_planted_fault_fails_the_rule_tests(fault: str, tmp_path: Path) -> None:
    """The gate can fail: a copy of the rules with one fault fails the unchanged unit tests."""
    old, new = PLANTED_FAULTS[fault]
    rules = ALERTS.read_text()
    assert old in rules, f"the planted fault {fault!r} no longer applies: {old!r} is not in alerts.yml"
    (tmp_path / "alerts.yml").write_text(rules.replace(old, new))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts.test.yml")
    # the faulty rules are still valid rules: only the unit tests can catch them
    assert promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0
    result = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0, f"promtool test rules passed despite {fault!r}:\n{_output(result)}"
    assert "FAILED" in result.stdout + result.stderr, _output(result)


def test_scrape_config_passes_promtool_check_config(tmp_path: Path) -> None:
    result = promtool("check", "config", SCRAPE_CONFIG.relative_to(REPO))
    if result.returncode != 0 and K8S_SD_MISSING in result.stdout + result.stderr:
        # Debian's prometheus is built without Kubernetes discovery (its NEWS.Debian: "Kubernetes
        # support has been completely removed"). Check everything else: the same file with each
        # kubernetes_sd_configs replaced by a static target and the rule file at its real path.
        # test_scrape_config_discovers_annotated_pods checks the Kubernetes part itself.
        config = yaml.safe_load(SCRAPE_CONFIG.read_text())
        replaced = 0
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["10.0.0.11:8765"]}]
                replaced += 1
        assert replaced, _output(result)
        config["rule_files"] = [str((PROMETHEUS_DIR / path).resolve()) for path in config["rule_files"]]
        copy = tmp_path / "prometheus.yml"
        copy.write_text(yaml.safe_dump(config, sort_keys=False))
        result = promtool("check", "config", copy)
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout + result.stderr, _output(result)
    # the rule file was found and checked along with the config
    assert "alerts.yml" in result.stdout + result.stderr, _output(result)


def test_scrape_config_discovers_annotated_pods() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert (SCRAPE_CONFIG.parent / config["rule_files"][0]).is_file()
    (job,) = [job for job in config["scrape_configs"] if "kubernetes_sd_configs" in job]
    assert job["job_name"] == "solara-persisted"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    relabel = job["relabel_configs"]
    keep = [r for r in relabel if r.get("action") == "keep"]
    assert keep == [
        {
            "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            "regex": "true",
            "action": "keep",
        }
    ]
    targets = {r.get("target_label") for r in relabel}
    assert {"__address__", "__metrics_path__"} <= targets  # prometheus.io/port and prometheus.io/path
    redis = [job for job in config["scrape_configs"] if job["job_name"] == "redis-exporter"]
    assert redis, "the Redis memory alerts need redis_exporter's metrics"


# --- the alerts and their unit tests ------------------------------------------------------------


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in _alert_cases():
        name = case["alertname"]
        # promtool passes a case for an alert that does not exist when it expects nothing
        assert name in alerts, f"alerts.test.yml tests {name!r}, which alerts.yml does not define"
        if case.get("exp_alerts"):
            fired.add(name)
            for expected in case["exp_alerts"]:
                assert "severity" in expected.get("exp_labels", {}), f"{name}: expected labels without severity"
                assert {"summary", "description"} <= set(expected.get("exp_annotations", {})), (
                    f"{name}: a firing case must expect its annotations"
                )
        else:
            quiet.add(name)
    assert not alerts - fired, f"alerts without a case where they fire: {sorted(alerts - fired)}"
    assert not alerts - quiet, f"alerts without a case where they stay quiet: {sorted(alerts - quiet)}"


def test_alerts_are_labelled_and_point_at_the_runbook() -> None:
    headings = [
        line.lstrip("#").strip().replace("`", "")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    ]
    rules = _alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert name.startswith("SolaraState"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        description = " ".join(annotations["description"].split())
        assert "docs/operations.md" in description, f"{name}: no pointer to the runbook"
        # every section the description names exists (a heading of docs/operations.md starts with it)
        sections = re.findall(r'"([^"]+)"', description.split("docs/operations.md", 1)[1])
        assert sections, f"{name}: name the docs/operations.md section"
        for section in sections:
            assert any(heading.startswith(section) for heading in headings), (
                f"{name}: docs/operations.md has no section {section!r}"
            )


def test_queries_use_only_exported_metrics() -> None:
    for name, expr in _all_queries():
        unknown = set(METRIC_NAME.findall(expr)) - KNOWN_METRICS
        assert not unknown, f"{name} queries metrics nobody exports: {sorted(unknown)}"


# --- the Grafana dashboard -----------------------------------------------------------------------


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["type"] == "query"
    panels = _query_panels(dashboard)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel.get("title", "").strip(), f"panel {panel.get('id')} has no title"
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r} has a target without expr"
            assert target.get("refId"), panel["title"]
            assert "job" not in target["expr"] or "$job" in target["expr"], (
                f"panel {panel['title']!r} filters on job without the job variable"
            )
    # the panels are all there (one metric family each at least)
    queried = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    for family in [
        "solara_state_restores_total",
        "solara_state_flushes_total",
        "solara_state_breaker_state",
        "solara_state_status",
        "solara_state_superseded_closes_total",
        "solara_state_superseded_while_connected_total",
        "solara_state_restore_duration_seconds_bucket",
        "solara_state_flush_duration_seconds_bucket",
        "solara_state_envelope_bytes_bucket",
        "solara_state_synced_bytes_total",
        "solara_state_key_synced_bytes_total",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
    ]:
        assert family in queried, f"no panel shows {family}"


# --- every query parses on a real Prometheus ------------------------------------------------------


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    # loopback only: never through an HTTP proxy from the environment
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def prometheus_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus server with no scrape targets on a free loopback port; its HTTP API's base URL."""
    binary = _binary("prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    opener = _no_proxy_opener()
    with (home / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"prometheus exited with {process.returncode}:\n{(home / 'prometheus.log').read_text()}"
                    )
                try:
                    with opener.open(f"{base}/-/ready", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:  # refused while starting, 503 until ready
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"prometheus not ready within {STARTUP_TIMEOUT:.0f} s:\n"
                        f"{(home / 'prometheus.log').read_text()}"
                    )
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with _no_proxy_opener().open(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # a parse error is a 400 with a JSON body
        with error:
            return json.load(error)


def test_the_query_check_catches_a_parse_error(prometheus_api: str) -> None:
    answer = _query(prometheus_api, 'sum by (job) (rate(solara_state_restores_total{result="bailout"}))')
    assert answer["status"] == "error", answer
    assert answer["errorType"] == "bad_data", answer


@pytest.mark.parametrize(("name", "expr"), _all_queries(), ids=[name for name, _ in _all_queries()])
def test_query_parses(prometheus_api: str, name: str, expr: str) -> None:
    answer = _query(prometheus_api, expr)
    assert answer["status"] == "success", f"{name}: {expr}\n{answer}"
