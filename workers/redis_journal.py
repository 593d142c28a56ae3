"""The Celery queue's journal in Redis: task states, idempotency keys, dead letters, versions.

Keys (``parley:`` prefix): ``task:<id>`` (hash: task, state, attempts, error; expires),
``pending`` (set of unfinished task ids), ``key:<idempotency key>`` (task id, SET NX with a
TTL), ``dead_letters`` (list of JSON objects), ``dead_letter_key:<key>``,
``applied_versions`` (hash: doc id -> version), ``lock:<name>`` (owner task id, with a TTL).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from workers.context import FINAL_STATES, State


def _text(value: bytes | str) -> str:
    """A reply as text (the client returns bytes unless it decodes responses itself)."""
    return value.decode() if isinstance(value, bytes) else value

PREFIX = "parley:"
RECORD_TTL_S = 7 * 24 * 3600
# Both leave a task that has already finished as it is (a message delivered twice).
_BEGIN = """
local state = redis.call('hget', KEYS[1], 'state')
for i = 5, #ARGV do if state == ARGV[i] then return -1 end end
local attempts = redis.call('hincrby', KEYS[1], 'attempts', 1)
redis.call('hset', KEYS[1], 'task', ARGV[2], 'state', 'running', 'updated', ARGV[3])
redis.call('expire', KEYS[1], ARGV[4])
redis.call('sadd', KEYS[2], ARGV[1])
return attempts
"""
_FINISH = """
local state = redis.call('hget', KEYS[1], 'state')
for i = 7, #ARGV do if state == ARGV[i] then return 0 end end
redis.call('hset', KEYS[1], 'state', ARGV[2], 'error', ARGV[3], 'updated', ARGV[4])
redis.call('expire', KEYS[1], ARGV[5])
if ARGV[6] == '1' then redis.call('srem', KEYS[2], ARGV[1]) end
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisJournal:
    def __init__(self, client: redis.Redis, *, prefix: str = PREFIX,
                 ttl_s: int = RECORD_TTL_S) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- what the queue side uses -----------------------------------------------------------

    def claim_key(self, key: str, task_id: str) -> str:
        """The task id that owns ``key``: ``task_id`` if the key was free, else the first's."""
        name = self._k("key", key)
        if self.redis.set(name, task_id, nx=True, ex=self.ttl_s):
            return task_id
        owner = self.redis.get(name)
        return _text(owner) if owner else task_id

    def task_for_key(self, key: str) -> str | None:
        owner = self.redis.get(self._k("key", key))
        return _text(owner) if owner else None

    def release_key(self, key: str, task_id: str) -> None:
        self.redis.eval(_RELEASE, 1, self._k("key", key), task_id)

    def queued(self, task_id: str, task: str) -> None:
        name = self._k("task", task_id)
        pipe = self.redis.pipeline()
        pipe.hset(name, mapping={"task": task, "state": "queued", "attempts": 0, "error": "",
                                 "updated": time.time()})
        pipe.expire(name, self.ttl_s)
        pipe.sadd(self._k("pending"), task_id)
        pipe.execute()

    def forget(self, task_id: str) -> None:
        self.redis.delete(self._k("task", task_id))
        self.redis.srem(self._k("pending"), task_id)

    def status(self, task_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self._k("task", task_id))
        if not raw:
            return None
        row = {_text(k): _text(v) for k, v in raw.items()}
        return {"id": task_id, "task": row.get("task", ""), "state": row.get("state", ""),
                "attempts": int(row.get("attempts", 0)), "error": row.get("error", "")}

    def pending(self) -> int:
        return int(self.redis.scard(self._k("pending")))

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self._k("dead_letters"), 0, -1)]

    def take_dead_letter(self, letter_id: str) -> dict[str, Any] | None:
        """Remove and return the dead letter (None if there is none with that id)."""
        for raw in self.redis.lrange(self._k("dead_letters"), 0, -1):
            letter: dict[str, Any] = json.loads(raw)
            if letter["id"] == letter_id:
                if self.redis.lrem(self._k("dead_letters"), 1, _text(raw)):
                    return letter
                return None  # taken by someone else meanwhile
        return None

    # -- the Journal the shared base writes -------------------------------------------------

    def begin(self, task_id: str, task: str) -> int | None:
        attempts = self.redis.eval(_BEGIN, 2, self._k("task", task_id), self._k("pending"),
                                   task_id, task, time.time(), self.ttl_s, *FINAL_STATES)
        return None if int(attempts) < 0 else int(attempts)

    def finish(self, task_id: str, state: State, *, error: str = "") -> None:
        self.redis.eval(_FINISH, 2, self._k("task", task_id), self._k("pending"), task_id,
                        state, error, time.time(), self.ttl_s,
                        1 if state in FINAL_STATES else 0, *FINAL_STATES)

    def add_dead_letter(self, *, task: str, payload: Any, error: str, attempts: int,
                        task_id: str | None = None, key: str | None = None) -> str:
        letter_id = uuid.uuid4().hex
        if key is not None:
            name = self._k("dead_letter_key", key)
            if not self.redis.set(name, letter_id, nx=True, ex=self.ttl_s):
                return _text(self.redis.get(name) or b"")
        letter = {"id": letter_id, "task": task, "task_id": task_id, "payload": payload,
                  "error": error, "attempts": attempts, "created": time.time()}
        self.redis.rpush(self._k("dead_letters"),
                         json.dumps(letter, ensure_ascii=False, default=str))
        return letter_id

    def applied_version(self, doc_id: str) -> int | None:
        value = self.redis.hget(self._k("applied_versions"), doc_id)
        return None if value is None else int(value)

    def set_applied_version(self, doc_id: str, version: int | None) -> None:
        if version is None:
            self.redis.hdel(self._k("applied_versions"), doc_id)
        else:
            self.redis.hset(self._k("applied_versions"), doc_id, version)

    @contextmanager
    def lock(self, name: str, timeout_s: float, *, owner: str | None = None) -> Iterator[None]:
        """A lock across workers that expires ``timeout_s`` + 60 s after it was taken.

        ``owner`` (the task id) may take over its own lock: a task re-run after its worker
        died does not wait for the lock its first run left behind.
        """
        key, token = self._k("lock", name), owner or uuid.uuid4().hex
        ttl_ms = int((timeout_s + 60) * 1000)
        deadline = time.monotonic() + timeout_s
        while not self.redis.set(key, token, nx=True, px=ttl_ms):
            if owner is not None and self.redis.get(key) == token.encode():
                self.redis.set(key, token, px=ttl_ms)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"lock {name} is still held after {timeout_s} s")
            time.sleep(0.05)
        try:
            yield
        finally:
            self.redis.eval(_RELEASE, 1, key, token)
