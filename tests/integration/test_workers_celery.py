"""The Celery queue against a real worker process and a private Redis.

Each test starts ``celery -A workers.celery_app worker`` (prefork, one process) in its own
process group, against a redis-server started here on a free port, with ``PARLEY_VAR_DIR``
in a temporary folder (the embedded document index and graph). Killing the process group
with SIGKILL is a crash of the whole worker: the task's message stays unacknowledged in Redis
and is handed out again once the (here short) visibility timeout has passed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.ingest import chunk_document
from knowledge.payloads import document_from_payload
from tests.servers import private_redis
from workers.queue import wait_until_applied

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 3
VISIBILITY_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (nothing kept on disk) for this module."""
    with private_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def worker_env(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
               ) -> dict[str, str]:
    """The settings of the worker and of this process (which enqueues), as PARLEY_* vars."""
    import redis

    redis.Redis.from_url(redis_url).flushall()
    parley = {
        "PARLEY_ENVIRONMENT": "test",
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "PARLEY_MODELS_DIR": str(tmp_path / "models"),
        "PARLEY_BROKER_URL": redis_url,
        "PARLEY_TASK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PARLEY_TASK_RETRY_BACKOFF_S": "0.2",
        "PARLEY_TASK_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
    }
    for name in [n for n in os.environ if n.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    for name, value in parley.items():
        monkeypatch.setenv(name, value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {**env, **parley, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass
class Worker:
    env: dict[str, str]
    log: Path
    queue: Any
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                 "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", name],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 45
        while not self.queue.app.control.ping(timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: a crash, no clean-up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    from workers.celery_app import CeleryQueue

    queue = CeleryQueue(Settings())
    running = Worker(worker_env, tmp_path / "worker.log", queue)
    try:
        yield running
    finally:
        running.stop()
        queue.close()


def article(version: int, paragraphs: int) -> dict[str, Any]:
    """A help-centre article; many long paragraphs make embedding it take seconds."""
    body = "\n\n".join(
        f"Step {i} of version {version}: " + " ".join(
            f"descale{i}x{j} the kettle element with citric acid solution" for j in range(8))
        for i in range(paragraphs))
    return {"doc_id": "kettle", "title": "Kettle care", "lang": "en", "tags": ["care"],
            "text": body, "source": "editor", "version": version}


async def index_state(settings: Settings) -> dict[str, str]:
    index = SQLiteDocumentIndex(settings.var_dir / "kb" / "documents.db")
    try:
        return await index.hashes("kettle")
    finally:
        await index.close()


def wait_for_state(queue: Any, task_id: str, state: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (queue.status(task_id) or {}).get("state") != state:
        assert time.monotonic() < deadline, f"task {task_id} never reached {state}"
        time.sleep(0.01)


async def test_an_edit_lands_exactly_once_when_the_worker_is_killed_mid_task(
        worker: Worker) -> None:
    queue, settings = worker.queue, Settings()
    worker.start()
    first = queue.enqueue("index_document", article(1, 2), key="kettle:1")
    assert (await wait_until_applied(queue, first, timeout_s=30))["state"] == "done"

    edit = article(2, 40)
    task_id = queue.enqueue("index_document", edit, key="kettle:2")
    wait_for_state(queue, task_id, "running", 20)
    await asyncio.sleep(0.1)  # embedding the edit's chunks takes seconds: kill it in the middle
    assert queue.status(task_id)["state"] == "running"
    worker.kill()
    assert queue.status(task_id)["state"] == "running"  # nothing recorded it as applied
    assert queue.journal.applied_version("kettle") == 1

    worker.start()
    status = await wait_until_applied(queue, task_id, timeout_s=VISIBILITY_TIMEOUT_S + 30)
    assert (status["state"], status["attempts"]) == ("done", 2), worker.log_tail()
    expected = {c.id for c in chunk_document(document_from_payload(edit))}
    assert len(expected) > 5
    assert set(await index_state(settings)) == expected  # v2 exactly: no v1 left, no extra
    assert queue.journal.applied_version("kettle") == 2
    assert queue.enqueue("index_document", edit, key="kettle:2") == task_id  # once only
    assert queue.pending() == 0
    assert queue.dead_letters() == []


def test_the_redis_journal_ignores_a_second_delivery_of_a_finished_task(
        redis_url: str) -> None:
    import redis

    from workers.redis_journal import RedisJournal

    journal = RedisJournal(redis.Redis.from_url(redis_url), prefix=f"t{uuid.uuid4().hex}:")
    journal.queued("t1", "index_document")
    assert journal.begin("t1", "index_document") == 1
    journal.finish("t1", "retry", error="ConnectionError")
    assert journal.begin("t1", "index_document") == 2  # a retry is a new attempt
    journal.finish("t1", "done")
    assert journal.begin("t1", "index_document") is None  # delivered again: not run
    journal.finish("t1", "skipped")  # a duplicate that was already running finishes late
    status = journal.status("t1")
    assert status is not None and (status["state"], status["attempts"]) == ("done", 2)
    assert journal.pending() == 0
    journal.redis.close()


async def test_a_poison_message_is_dead_lettered_after_n_attempts(worker: Worker) -> None:
    queue = worker.queue
    worker.start()
    poison = {"label": "Product", "key": "NH-BL-200", "props": {"name": "Blender"},
              "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "warranty"}]}
    task_id = queue.enqueue("upsert_entity", poison)
    invalid = queue.enqueue("index_document", {"doc_id": "kettle", "text": "no title"})
    status = await wait_until_applied(queue, task_id, timeout_s=30)
    assert (status["state"], status["attempts"]) == ("dead", MAX_ATTEMPTS)
    assert status["error"].startswith("MissingEndpoint")
    assert (await wait_until_applied(queue, invalid, timeout_s=30))["attempts"] == 1
    letters = {d["task_id"]: d for d in queue.dead_letters()}
    assert set(letters) == {task_id, invalid}
    assert letters[task_id]["payload"] == poison
    assert letters[task_id]["attempts"] == MAX_ATTEMPTS

    await asyncio.sleep(1.5)  # not retried any further
    assert queue.status(task_id)["attempts"] == MAX_ATTEMPTS
    assert queue.pending() == 0

    # Once the missing node exists, an admin's retry succeeds.
    policy = queue.enqueue("upsert_entity", {"label": "Policy", "key": "warranty"})
    assert (await wait_until_applied(queue, policy, timeout_s=30))["state"] == "done"
    queue.retry_dead_letter(letters[task_id]["id"])
    assert (await wait_until_applied(queue, task_id, timeout_s=30))["state"] == "done"
    assert [d["task_id"] for d in queue.dead_letters()] == [invalid]
