"""Periodic tasks under Celery against a private Redis: several workers, one run per period.

Every Celery worker's main process runs a ``PeriodicTimer`` (``workers.celery_app``); here two
timers, each with its own ``CeleryQueue`` (its own Redis connections and Celery app, as two
worker replicas have), check the same periods at the same instant. Then a real
``celery -A workers.celery_app worker`` shows that the timer runs in the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.config import Settings
from tests.servers import private_redis
from workers.celery_app import QUEUE, CeleryQueue
from workers.schedule import PERIODIC, PeriodicTimer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY_S = 24 * 3600


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private, empty redis-server (nothing kept on disk)."""
    with private_redis(tmp_path) as url:
        yield url


def test_two_racing_worker_timers_enqueue_each_due_periodic_task_once(
        redis_url: str, tmp_path: Path) -> None:
    settings = Settings(broker_url=redis_url, var_dir=tmp_path / "var", retention_days=30,
                        kafka_bootstrap="kafka:9092")  # every periodic task enabled
    timers = [PeriodicTimer(lambda: CeleryQueue(settings), settings) for _ in range(2)]
    periods = [1_800_000_000.0 + n * DAY_S for n in range(25)]  # a new period of every task
    start = threading.Barrier(len(timers))
    ids: list[list[list[str]]] = [[] for _ in timers]

    def race(n: int) -> None:
        for now in periods:
            start.wait(10)  # both check the same instant together
            ids[n].append(timers[n].check(now=now))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(timers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert ids[0] == ids[1], "both workers must see the one run of each period"
        assert all(len(found) == len(PERIODIC) for found in ids[0])
        client = redis.Redis.from_url(redis_url)
        try:
            sent = client.llen(QUEUE)  # Celery's Redis transport: one list per queue
            claimed = client.keys("parley:key:periodic:*")
        finally:
            client.close()
        assert sent == len(periods) * len(PERIODIC)  # one message per task and period
        assert len(claimed) == len(periods) * len(PERIODIC)
        assert len({i for found in ids[0] for i in found}) == sent
    finally:
        for timer in timers:
            timer.stop()


def test_a_celery_worker_enqueues_a_due_periodic_task_at_start(
        redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update({"PARLEY_ENVIRONMENT": "test", "PARLEY_VAR_DIR": str(tmp_path / "var"),
                "PARLEY_MODELS_DIR": str(tmp_path / "models"), "PARLEY_BROKER_URL": redis_url,
                "PARLEY_RETENTION_DAYS": "30", "PARLEY_TASK_MAX_ATTEMPTS": "1",
                "OMP_NUM_THREADS": "1"})
    log = tmp_path / "worker.log"
    key = f"parley:key:periodic:conversations.retention:{int(time.time() // DAY_S)}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
             "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while client.get(key) is None:
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker queued no retention run:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        task_id = str(client.get(key))  # decode_responses: a str already
        assert client.hget(f"parley:task:{task_id}", "task") == "conversations.retention"
    finally:
        client.close()
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
