"""Helpers for tests that need a server: one they start themselves, or the PostgreSQL and
Redis on 127.0.0.1 that CI provides (see .ci/run)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = os.environ.get("PARLEY_TEST_POSTGRES",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def unavailable(message: str) -> NoReturn:
    """A server a test needs could not start: skip locally, fail under CI (which provides it)."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_redis(url: str = REDIS_URL) -> str:
    """``url`` when a Redis server answers there; otherwise ``unavailable``."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        unavailable(f"no Redis server at {url} (redis-server --port 6379; CI: see .ci/run)")
    finally:
        client.close()
    return url


def require_postgres(url: str = POSTGRES_URL) -> str:
    """``url`` when a PostgreSQL server accepts a connection there; otherwise ``unavailable``."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {url} (see .ci/run): {exc}")
    return url


@contextmanager
def scratch_database(prefix: str, admin_url: str = POSTGRES_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server at ``admin_url``, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {admin_url} (see .ci/run): {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def wait_healthy(url: str, process: subprocess.Popen[bytes], *, timeout_s: float,
                 log_tail: Callable[[], str], what: str = "the API",
                 interval_s: float = 0.5) -> None:
    """Poll ``url``/healthz until it answers 200; fail with ``log_tail()`` when ``process``
    exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode} before {url} was healthy:\n"
                        f"{log_tail()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    pytest.fail(f"{what} at {url} was not healthy after {timeout_s:.0f} s:\n{log_tail()}")


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10) -> None:
    """Terminate, then kill if it does not exit within ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A redis-server of its own on a free port, keeping nothing on disk (``folder`` is its
    working folder); its URL while the block runs."""
    import shutil

    import redis

    from tests.stack import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"redis-server did not start on port {port}")
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(10)
