"""The process supervisor behind `parley run`: a killed service comes back even when a worker
it forked survived and still holds its port, and no crash-looping service stops the others."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.stack import free_port
from web.runner import Service, Supervisor

pytestmark = pytest.mark.unit

# A main process that forks a worker serving HTTP on the port, then waits: like rasa-sdk or a
# uvicorn server with workers. Killing the main process with SIGKILL orphans the worker.
FORKING_SERVER = """
import pathlib, subprocess, sys
worker = subprocess.Popen([sys.executable, "-m", "http.server", sys.argv[1],
                           "--bind", "127.0.0.1", "--directory", sys.argv[2]])
pathlib.Path(sys.argv[2], "worker.pid").write_text(str(worker.pid))
sys.exit(worker.wait())
"""


def forking_service(tmp_path: Path, port: int) -> Service:
    (tmp_path / "health").write_text("ok")
    return Service("forking", [sys.executable, "-c", FORKING_SERVER, str(port), str(tmp_path)],
                   f"http://127.0.0.1:{port}/health", dict(os.environ),
                   log_path=tmp_path / "forking.log")


def wait_for(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_killed_service_comes_back_although_its_worker_held_the_port(tmp_path: Path) -> None:
    port = free_port()
    service = forking_service(tmp_path, port)
    supervisor = Supervisor([service], backoff_s=0.1)
    try:
        supervisor.start_all(timeout_s=30)
        first = service.process
        assert first is not None
        orphan = int((tmp_path / "worker.pid").read_text())
        os.kill(first.pid, signal.SIGKILL)  # the worker survives and keeps the port
        assert wait_for(lambda: not service.alive())
        assert _running(orphan)
        supervisor.check_once()  # restarts it, after killing what the dead one left
        assert wait_for(lambda: not _running(orphan), timeout=5), "the orphan keeps the port"
        assert wait_for(lambda: (supervisor.check_once(),
                                 int((tmp_path / "worker.pid").read_text()) != orphan)[1])
        assert wait_for(service.healthy, timeout=30)
        time.sleep(1.0)
        assert service.alive() and service.process is not first  # it bound the port: no crash
    finally:
        supervisor.stop_all(timeout=5)
    assert wait_for(lambda: not _answers(port), timeout=10), "a worker outlived stop_all"


def test_a_crash_looping_service_backs_off_and_never_stops_the_others(tmp_path: Path) -> None:
    port = free_port()
    healthy = forking_service(tmp_path, port)
    broken = Service("broken", [sys.executable, "-c", "import sys; sys.exit(3)"],
                     "http://127.0.0.1:9/", dict(os.environ), log_path=tmp_path / "broken.log")
    supervisor = Supervisor([healthy, broken], backoff_s=0.2, max_backoff_s=0.8)
    try:
        healthy.start()
        assert wait_for(healthy.healthy)
        starts = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            before = broken.process
            supervisor.check_once()  # never raises, however often it crashes
            starts += broken.process is not before
            time.sleep(0.05)
        assert 2 <= starts <= 8, starts  # restarted, but backing off (0.2, 0.4, 0.8, 0.8 s)
        assert healthy.healthy()
    finally:
        supervisor.stop_all(timeout=5)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
        return True
    except httpx.HTTPError:
        return False
