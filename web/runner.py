"""Build what is missing and run Parley's processes: NLU service, action server, Rasa, API.

``parley run`` (what ``make run`` calls) trains missing models, writes Rasa's endpoints from
settings, starts the four processes, restarts one that crashes, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import yaml

from analytics.rasa_events import broker_endpoint
from bot.project import assemble, build_dir, fingerprint
from core.config import ROOT, Settings

logger = logging.getLogger(__name__)
BOT_DIR = ROOT / "bot"
RASA_BIN = Path(os.environ.get("PARLEY_RASA_VENV", ROOT / ".venv-rasa")) / "bin" / "rasa"


# ---------------------------------------------------------------- training

def rasa_model_path(settings: Settings) -> Path:
    """Where the dialogue model for the project as it is now lives (named by its content)."""
    return settings.rasa_model_dir / f"parley-{fingerprint(assemble(settings))}.tar.gz"


def train_rasa(settings: Settings, *, force: bool = False) -> Path:
    """Train the Rasa dialogue model unless one for the same project files exists."""
    target = rasa_model_path(settings)
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(RASA_BIN), "train", "--config", "config.yml", "--domain", "domain.yml",
           "--data", "data", "--out", str(target.parent),
           "--fixed-model-name", target.name.removesuffix(".tar.gz")]
    result = subprocess.run(cmd, cwd=build_dir(settings), env=rasa_env(settings),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.exists():
        raise RuntimeError(f"rasa train failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    for old in target.parent.glob("parley-*.tar.gz"):  # earlier versions of this project
        if old != target:
            old.unlink(missing_ok=True)
    return target


def with_free_ports(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Give Rasa, the action server and the NLU service free ports unless their port or URL is
    set, so that two projects run side by side; return the settings and the environment that
    tells the child processes."""
    updates: dict[str, int | str] = {}
    for name in ("nlu_port", "action_port"):
        if name not in settings.model_fields_set:
            updates[name] = free_port()
    if "rasa_url" not in settings.model_fields_set:
        updates["rasa_url"] = f"http://127.0.0.1:{free_port()}"
    env = {f"PARLEY_{name.upper()}": str(value) for name, value in updates.items()}
    return settings.model_copy(update=updates), env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- configuration

def rasa_env(settings: Settings) -> dict[str, str]:
    """Rasa's environment. ``TICKET_LOCK_LIFETIME``: a Rasa process killed mid-turn leaves its
    ticket in the shared (Redis) lock store, and every Rasa process waits for it to expire
    before it serves that conversation again: Rasa's default of 60 s froze the conversation for
    a minute. No turn outlives the API's wait for Rasa (``rasa_timeout_s``: then it drops the
    request, which cancels it in Rasa), and Parley's own turn lock keeps the turns of one
    conversation one at a time, so the ticket need not outlive that wait either."""
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(ROOT), "PARLEY_NLU_URL": settings.nlu_url,
           "PARLEY_RASA_TOKEN": settings.rasa_token.get_secret_value(),
           "TICKET_LOCK_LIFETIME": str(max(1, math.ceil(settings.rasa_timeout_s))),
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "MPLCONFIGDIR": str(settings.var_dir / "mpl")}
    env.pop("VIRTUAL_ENV", None)
    return env


def _redis_store(url: str, kind: str) -> dict[str, object]:
    parsed = urlparse(url)
    store: dict[str, object] = {"type": "redis", "url": parsed.hostname or "127.0.0.1",
                                "port": parsed.port or 6379,
                                "db": int((parsed.path or "/0").lstrip("/") or 0),
                                "key_prefix": f"parley_{kind}"}
    if parsed.password:
        store["password"] = parsed.password
    return store


def endpoints_config(settings: Settings) -> dict[str, object]:
    """Rasa's endpoints from Parley's settings: SQL tracker store by default, Redis by URL;
    the event broker that ``analytics.rasa_events`` reads (SQL by default, Kafka when
    ``PARLEY_KAFKA_BOOTSTRAP`` is set)."""
    if settings.tracker_store_url.startswith(("redis://", "rediss://")):
        tracker: dict[str, object] = _redis_store(settings.tracker_store_url, "tracker")
    elif settings.database_url.startswith(("postgresql://", "postgres://")):
        parsed = urlparse(settings.database_url)
        tracker = {"type": "SQL", "dialect": "postgresql", "url": parsed.hostname,
                   "port": parsed.port or 5432, "db": parsed.path.lstrip("/"),
                   "username": parsed.username or "", "password": parsed.password or ""}
    else:
        tracker = {"type": "SQL", "dialect": "sqlite",
                   "db": str(settings.var_dir / "rasa" / "tracker.db")}
    lock = (_redis_store(settings.lock_store_url, "lock")
            if settings.lock_store_url.startswith(("redis://", "rediss://"))
            else {"type": "in_memory"})
    return {"action_endpoint": {"url": settings.action_url}, "tracker_store": tracker,
            "lock_store": lock, "event_broker": broker_endpoint(settings)}


def write_endpoints(settings: Settings) -> Path:
    path = settings.var_dir / "rasa" / "endpoints.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(endpoints_config(settings), sort_keys=False))
    return path


# ---------------------------------------------------------------- processes

@dataclass
class Service:
    name: str
    cmd: list[str]
    health_url: str
    env: dict[str, str]
    cwd: Path = ROOT
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(self.health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the service's whole process group: its main process and every worker it
        forked (a rasa-sdk or uvicorn worker can outlive a killed parent and hold the port)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        self.kill_group(signal.SIGTERM)
        self.reap(timeout)

    def reap(self, timeout: float) -> None:
        """Wait for the main process; SIGKILL the group if it outlives ``timeout``."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            self.process.wait()
        self.kill_group(signal.SIGKILL)  # workers the main process left behind


def services(settings: Settings, rasa_model: Path,
             ports: dict[str, str] | None = None, *, workers: int = 1) -> list[Service]:
    """The four processes, in start order (each one's dependencies start before it);
    ``ports`` is the environment from ``with_free_ports``. ``workers`` > 1 runs that many API
    and NLU worker processes, each kind on its one port (uvicorn's workers); the action server
    and Rasa stay one process each (see docs/deploy.md)."""
    scaled = ["--workers", str(workers)] if workers > 1 else []
    python = sys.executable
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1",
           "PARLEY_PROJECT": str(settings.project), **(ports or {})}
    logs = settings.var_dir / "logs"
    endpoints = write_endpoints(settings)
    token = settings.rasa_token.get_secret_value()
    return [
        Service("nlu", [python, "-m", "web.cli", "serve", "nlu", *scaled],
                f"{settings.nlu_url}/healthz",
                env, log_path=logs / "nlu.log"),
        Service("actions", [python, "-m", "rasa_sdk", "--actions", "bot.actions", "-p",
                            str(settings.action_port), "--quiet"],
                f"http://{settings.action_host}:{settings.action_port}/health",
                {**env, "SANIC_HOST": settings.action_host}, log_path=logs / "actions.log"),
        Service("rasa", [str(RASA_BIN), "run", "--model", str(rasa_model), "--endpoints",
                         str(endpoints), "--credentials", str(BOT_DIR / "credentials.yml"),
                         "--enable-api", f"--auth-token={token}", "-i", "127.0.0.1", "-p",
                         str(urlparse(settings.rasa_url).port or 5005)],
                f"{settings.rasa_url}/webhooks/parley/", {**rasa_env(settings), **(ports or {})},
                log_path=logs / "rasa.log"),
        Service("api", [python, "-m", "web.cli", "serve", "api", *scaled],
                f"http://{settings.api_host}:{settings.api_port}/healthz", env,
                log_path=logs / "api.log"),
    ]


class Supervisor:
    """Start services in order, wait for health, restart crashed ones, stop all on exit.

    A crashed service is restarted after its whole process group is killed (so no orphaned
    worker keeps its port), with exponential back-off while it keeps crashing; one service that
    cannot start never stops the others."""

    def __init__(self, services: list[Service], *, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, stable_s: float = 60.0) -> None:
        self.services = services
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s  # up this long: the next crash starts the back-off afresh
        self._stopping = False
        self._next_start: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def start_all(self, on_ready: Callable[[Service, float], None] = lambda s, t: None,
                  timeout_s: float = 180.0) -> None:
        for service in self.services:
            started = time.monotonic()
            service.start()
            self._started_at[service.name] = started
            while not service.healthy():
                if not service.alive():
                    raise RuntimeError(
                        f"{service.name} exited during start-up; see {service.log_path}")
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"{service.name} not healthy after {timeout_s:.0f}s; "
                                       f"see {service.log_path}")
                time.sleep(0.25)
            on_ready(service, time.monotonic() - started)

    def watch(self) -> None:
        while not self._stopping:
            self.check_once()
            time.sleep(0.25)

    def check_once(self) -> None:
        """Restart every service that has exited, when its back-off has passed."""
        now = time.monotonic()
        for service in self.services:
            if self._stopping or service.alive():
                continue
            name = service.name
            if name not in self._next_start:  # just found dead
                service.reap(0)  # kill what it left behind before anything binds its port
                up_for = now - self._started_at.get(name, now)
                failures = 0 if up_for >= self.stable_s else self._failures.get(name, 0) + 1
                self._failures[name] = failures
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** max(failures - 1, 0))
                self._next_start[name] = now + (0 if failures == 0 else delay)
                logger.warning("%s exited (code %s); restarting in %.1fs", name,
                               service.process.returncode if service.process else "?",
                               self._next_start[name] - now)
            if now >= self._next_start[name]:
                del self._next_start[name]
                self._started_at[name] = now
                service.start()

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every group at once, then wait; SIGKILL what is left."""
        self._stopping = True
        for service in reversed(self.services):
            if service.alive():
                service.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in reversed(self.services):
            service.reap(max(0.0, deadline - time.monotonic()))
