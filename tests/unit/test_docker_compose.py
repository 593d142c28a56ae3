"""docker-compose.yml: the production stack uses every store it starts.

The file is read as docker compose reads it (YAML with merge keys, then ``${...}``
interpolation with dummy secrets) and checked against ``core.config.Settings``, the Rasa
endpoints it mounts (bot/endpoints.compose.yml) and the Dockerfile. Debian's
``docker-compose`` validates it too when installed (CI installs it: .ci/run).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from core.config import Settings
from tests.servers import unavailable

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENDPOINTS = ROOT / "bot" / "endpoints.compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# What the file requires (${X:?...}); docker-compose config needs them as well.
SECRETS = {"PARLEY_SECRET_KEY": "test-secret-key", "PARLEY_RASA_TOKEN": "test-rasa-token",
           "POSTGRES_PASSWORD": "test-postgres", "NEO4J_PASSWORD": "test-neo4j",
           "ELASTIC_PASSWORD": "test-elastic"}

# Each Parley process, by service name, and what its command runs.
ROLES = {"api": "parley serve api", "nlu": "parley serve nlu",
         "actions": "rasa_sdk --actions bot.actions", "worker": "parley worker",
         "kafka-consumer": "parley kafka consume"}
EVERY = frozenset(ROLES)
# A store the stack starts -> the setting that points Parley at it, and who must have it.
STORES: dict[str, tuple[str, frozenset[str]]] = {
    "postgres": ("PARLEY_DATABASE_URL", EVERY),
    "redis": ("PARLEY_BROKER_URL", frozenset({"api", "worker", "kafka-consumer"})),
    "elasticsearch": ("PARLEY_ELASTICSEARCH_URL", frozenset({"api", "actions", "worker"})),
    "neo4j": ("PARLEY_NEO4J_URL", frozenset({"api", "actions", "worker"})),
    # The worker: analytics.rasa_events reads Rasa's events from Kafka.
    "kafka": ("PARLEY_KAFKA_BOOTSTRAP", frozenset({"api", "kafka-consumer", "worker"})),
    "vllm": ("PARLEY_GENERATOR_URL", frozenset({"api", "actions"})),
}
# Horizontally scaled: several replicas behind Docker's DNS (Rasa with the Redis lock store).
SCALABLE = {"api", "nlu", "actions", "rasa", "worker"}
# PARLEY_* variables that are not Settings fields, and who reads them.
NOT_SETTINGS = {"PARLEY_NLU_URL": "bot/components/parley_nlu.py, inside Rasa"}
ONE_SHOT = "service_completed_successfully"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", ""}

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^/\s@]*@)?(?P<host>[^/\s:;,'\"?#@]+)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """``$$``, ``${X}``, ``${X-d}``, ``${X:-d}``, ``${X?e}``, ``${X:?e}`` as compose reads them."""
    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in ("?", ":?") and (value is None or (op == ":?" and not value)):
            raise AssertionError(f"docker-compose.yml requires {name}: {arg}")
        if (op == "-" and value is None) or (op == ":-" and not value):
            return arg
        return value or ""
    return _VARIABLE.sub(one, text)


def _resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return node


@cache
def compose() -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *anchor) resolved here
    return _resolve(raw, SECRETS)  # type: ignore[no-any-return]


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def parley_services() -> dict[str, dict[str, Any]]:
    """Services built from the application image (Dockerfile at the repository root)."""
    def is_app(service: dict[str, Any]) -> bool:
        build = service.get("build")
        if isinstance(build, str):
            return build in (".", "./")
        return (isinstance(build, dict) and build.get("context", ".") in (".", "./")
                and build.get("dockerfile", "Dockerfile") == "Dockerfile")
    return {name: s for name, s in services().items() if is_app(s)}


def hosts(name: str, value: str) -> Iterator[str]:
    """Host names a setting points at: URLs, ``*_HOST`` values, ``host:port`` bootstrap lists.
    Names with a dot are outside the stack (a public URL), loopback is the container itself."""
    found = [m["host"] for m in _URL_HOST.finditer(value)]
    if name.endswith("_HOST"):
        found.append(value)
    elif name.endswith("_BOOTSTRAP"):
        found += [part.strip().rsplit(":", 1)[0] for part in value.split(",")]
    yield from (h for h in found if h not in LOCAL_HOSTS and "." not in h)


def one_shots() -> set[str]:
    return {dep for s in services().values() for dep, cond in depends_on(s).items()
            if cond == ONE_SHOT}


# ---------------------------------------------------------------- wiring

def test_every_host_a_setting_names_is_a_service() -> None:
    missing = [f"{name}: {var}={value!r} names {host!r}"
               for name, service in services().items()
               for var, value in environment(service).items()
               for host in hosts(var, value) if host not in services()]
    assert not missing, "settings point at services the file does not start:\n" + \
        "\n".join(missing)


def test_rasa_endpoints_name_services_of_the_stack() -> None:
    endpoints = yaml.safe_load(ENDPOINTS.read_text())
    named = {"action_endpoint": urlparse(endpoints["action_endpoint"]["url"]).hostname,
             "tracker_store": endpoints["tracker_store"]["url"],
             "lock_store": endpoints["lock_store"]["url"],
             "event_broker": str(endpoints["event_broker"]["url"]).rsplit(":", 1)[0]}
    assert {k: v for k, v in named.items() if v not in services()} == {}
    assert endpoints["tracker_store"]["dialect"] == "postgresql"
    # Several Rasa replicas serialise one conversation's turns only through a shared lock store.
    assert endpoints["lock_store"]["type"] == "redis"
    broker = endpoints["event_broker"]
    assert broker["type"] == "kafka" and broker["security_protocol"] == "PLAINTEXT"
    assert broker["topic"] in command(services()["kafka-topics"])


def test_each_parley_process_runs_from_the_app_image() -> None:
    app = parley_services()
    assert {role: cmd for role, cmd in ROLES.items()
            if role not in app or cmd not in command(app[role])} == {}
    for name, service in app.items():
        assert environment(service).get("PARLEY_ENVIRONMENT") == "production", name
        assert any(str(v).startswith("state:/app/var") for v in service.get("volumes", [])), \
            f"{name} must keep its state in the state volume"


def test_parley_services_have_the_url_of_every_store_the_stack_starts() -> None:
    app = parley_services()
    missing: list[str] = []
    for store, (setting, readers) in STORES.items():
        if store not in services():
            continue
        for role in sorted(readers):
            value = environment(app[role]).get(setting, "")
            if store not in hosts(setting, value):
                missing.append(f"{role}: {setting} should point at {store} (is {value!r})")
    assert not missing, "\n".join(missing)


def test_periodic_tasks_are_queued_by_the_workers_and_no_beat_runs() -> None:
    """Every Celery worker queues the due periodic tasks (a timer in its app, deduplicated by
    a per-period key in Redis); a celery beat beside them would queue them a second time."""
    from workers.celery_app import PeriodicStep, create_app

    worker = parley_services()["worker"]
    env = environment(worker)
    assert "parley worker" in command(worker) and env.get("PARLEY_BROKER_URL")  # Celery
    app = create_app(Settings(broker_url=env["PARLEY_BROKER_URL"]))  # builds, connects nowhere
    assert any(issubclass(step, PeriodicStep) for step in app.steps["worker"])
    beats = [name for name, service in services().items()
             if re.search(r"\bbeat\b|--beat|(^|\s)-B(\s|$)", command(service))]
    assert beats == [], "periodic tasks come from the workers; a beat would double them"
    # analytics.rasa_events folds Rasa's events from Kafka: the topic must exist first.
    assert depends_on(worker).get("kafka") == "service_healthy"
    assert depends_on(worker).get("kafka-topics") == ONE_SHOT


def test_parley_variables_are_settings() -> None:
    fields = {f"PARLEY_{name.upper()}" for name in Settings.model_fields}
    assert Settings.model_config.get("env_prefix") == "PARLEY_"
    unknown = [f"{name}: {var}" for name, service in services().items()
               for var in environment(service)
               if var.startswith("PARLEY_") and var not in fields and var not in NOT_SETTINGS]
    assert not unknown, "not a field of core.config.Settings (a typo?):\n" + "\n".join(unknown)


# ---------------------------------------------------------------- health, order, scale

def test_every_long_running_service_has_a_healthcheck() -> None:
    lacking = [name for name, service in services().items() if name not in one_shots()
               and (not (check := service.get("healthcheck")) or check.get("disable")
                    or not check.get("test"))]
    assert lacking == []
    for name in one_shots():
        assert services()[name].get("restart", "no") == "no", f"{name} runs once"


def test_services_wait_for_what_they_depend_on_to_be_healthy() -> None:
    for name, service in services().items():
        for dep, condition in depends_on(service).items():
            assert dep in services(), f"{name} depends on a missing service {dep}"
            assert condition in ("service_healthy", ONE_SHOT), f"{name} -> {dep}: {condition}"
            # A service of a profile (vLLM: gpu) is optional: nothing may need it to start.
            assert not services()[dep].get("profiles") or service.get("profiles"), \
                f"{name} needs {dep}, which only runs with --profile"


def test_scalable_services_have_replicas_and_no_fixed_host_port() -> None:
    for name in SCALABLE:
        replicas = (services()[name].get("deploy") or {}).get("replicas")
        assert isinstance(replicas, int) and replicas >= 1, f"{name}: deploy.replicas"
        assert not services()[name].get("ports"), f"{name}: replicas cannot share a host port"


def test_vllm_is_optional_and_parley_knows_where_it_is() -> None:
    vllm = services()["vllm"]
    assert vllm.get("profiles") == ["gpu"]
    # Absent vLLM must leave the CPU path: nothing forbids the fallback.
    for role in STORES["vllm"][1]:
        assert environment(parley_services()[role]).get("PARLEY_CPU_LLM", "auto") != "never"


# ---------------------------------------------------------------- images

def test_both_images_serve_the_same_project() -> None:
    args = {name: (services()[name]["build"].get("args") or {}).get("PROJECT")
            for name in ("api", "rasa")}
    assert args["api"] and args["api"] == args["rasa"]
    dockerfile = DOCKERFILE.read_text()
    assert "ARG PROJECT=" in dockerfile and "PARLEY_PROJECT=/app/project" in dockerfile
    assert "PARLEY_VAR_DIR=/app/var" in dockerfile


def test_the_app_image_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*").rstrip(".")
                for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert packages - copied == set()


def test_the_setup_script_calls_what_exists() -> None:
    cmd = services()["setup"]["command"]
    assert cmd[:2] == ["python", "-c"]
    tree = ast.parse(cmd[2])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:  # a function, or a submodule (`from core import db`)
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"), f"{node.module}.{alias.name}"


# ---------------------------------------------------------------- docker-compose itself

def _docker_compose(tmp_path: Path, *args: str,
                    env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run it with ``env`` only: an empty env file stands in for a developer's .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed (apt-get install -y docker-compose; "
                    ".ci/run installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
                          env={**clean, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    result = _docker_compose(tmp_path, "--profile", "gpu", "config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    result = _docker_compose(tmp_path, "config", "-q", env={})
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr or "set PARLEY_" in result.stderr
