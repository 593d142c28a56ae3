"""The live stream across API processes: Redis pub/sub (``PARLEY_STREAM_URL=redis://…``).

One channel per topic, ``<prefix>:stream:<topic>``, carrying the event as JSON. Each process
holds two connections:
- a pub/sub connection with one reader task that hands every message to this process's
  subscribers (the same bounded queues as the in-process hub: ``stream.Fanout``); it is
  subscribed to exactly the topics that have a local subscriber;
- a command connection with one publisher task that sends, in order, what ``publish`` queued.

Every event goes through Redis, the publishing process's own subscribers included, so every
process sees one topic's events in the one order Redis received them (one process publishes
in the order its code called ``publish``).

Failures. Redis pub/sub delivers at most once: while a process is cut off from Redis its
sockets miss the events published meanwhile (the transcript has them; the widget and the
console re-read it when they reconnect). The reader reconnects with exponential back-off and
subscribes again to every topic with a local subscriber; the publisher keeps up to
``max_pending`` events while Redis is away (the oldest dropped beyond that) and retries them
in order. Nothing here raises into a request: a turn's reply is stored whether or not it can
be announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conversations.stream import Event, Fanout, encode

logger = logging.getLogger(__name__)
_FAILURES = (RedisError, OSError)
CLOSE_TIMEOUT_S = 3.0  # each step of aclose(): a close never hangs on a dead connection


class RedisStreamHub:
    def __init__(self, url: str, *, prefix: str = "parley", max_queue: int = 256,
                 max_pending: int = 10_000, backoff_s: float = 0.1, max_backoff_s: float = 5.0,
                 subscribe_timeout_s: float = 5.0, client_name: str = "parley-stream") -> None:
        self._url = url
        self._channel_prefix = f"{prefix}:stream:"
        self._control = f"{self._channel_prefix}~hub"  # keeps the pub/sub connection open
        self._local = Fanout(max_queue)
        self._pending: deque[tuple[str, str]] = deque()
        self._max_pending = max_pending
        self._dropped = 0
        self._backoff_s, self._max_backoff_s = backoff_s, max_backoff_s
        self._subscribe_timeout_s = subscribe_timeout_s
        self._client_name = client_name
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None  # redis.asyncio.client.PubSub while connected
        self._subscribed: set[str] = set()
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._sync_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None  # set while nothing waits to be published
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ StreamHub

    async def start(self) -> None:
        if self._tasks:
            return
        self._client = aioredis.from_url(self._url, decode_responses=True,
                                         health_check_interval=15,
                                         socket_connect_timeout=2, client_name=self._client_name)
        self._sync_lock, self._wake, self._idle = asyncio.Lock(), asyncio.Event(), asyncio.Event()
        if self._pending:  # published before the hub was started
            self._wake.set()
        self._tasks = [asyncio.create_task(self._read_forever(), name="stream-reader"),
                       asyncio.create_task(self._publish_forever(), name="stream-publisher")]

    async def subscribe(self, topic: str) -> asyncio.Queue[Event]:
        await self.start()
        queue = self._local.add(topic)
        if self._pubsub is None:  # not connected yet: wait for the reader to subscribe it
            self._await_confirmation(topic)
        try:
            await self._reconcile(topic)
        except _FAILURES as exc:  # the reader subscribes again once it has reconnected
            logger.warning("stream: could not subscribe yet (%s)", type(exc).__name__)
        ready = self._ready.get(topic)
        if ready is not None and not ready.done():
            try:
                await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout_s)
            except TimeoutError:
                logger.warning("stream: Redis has not confirmed a subscription within %.0fs",
                               self._subscribe_timeout_s)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        if self._local.remove(topic, queue) and self._tasks:
            self._spawn(self._reconcile_quietly(topic))

    def publish(self, topic: str, event: Event) -> None:
        data = encode(event)
        if not self._tasks:  # first use from a request: start on this loop
            self._spawn(self.start())
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self._dropped += 1
            if self._dropped == 1:
                logger.warning("stream: Redis unreachable, dropping the oldest live events")
        self._pending.append((self._channel_prefix + topic, data))
        if self._wake is not None and self._idle is not None:
            self._idle.clear()
            self._wake.set()

    async def aclose(self, flush_s: float = 2.0) -> None:
        """Send what is still queued (for up to ``flush_s``), then disconnect."""
        if self._pending and self._idle is not None and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_s)
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a close must never hang on a dead connection
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        self._tasks, self._background = [], set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drop_pubsub(), CLOSE_TIMEOUT_S)
        if self._client is not None:
            with contextlib.suppress(TimeoutError, *_FAILURES):
                await asyncio.wait_for(self._client.aclose(), CLOSE_TIMEOUT_S)
            self._client = None

    # ------------------------------------------------------------------ subscriptions

    async def _reconcile(self, topic: str) -> None:
        """Make Redis's subscription to ``topic`` match whether it has a local subscriber."""
        assert self._sync_lock is not None
        async with self._sync_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # not connected: the reader subscribes every local topic on connect
            wanted = self._local.has(topic)
            if wanted and topic not in self._subscribed:
                self._await_confirmation(topic)
                self._subscribed.add(topic)
                await pubsub.subscribe(self._channel_prefix + topic)
            elif not wanted and topic in self._subscribed:
                self._subscribed.discard(topic)
                self._ready.pop(topic, None)
                await pubsub.unsubscribe(self._channel_prefix + topic)

    def _await_confirmation(self, topic: str) -> None:
        """A future the reader resolves when Redis confirms the subscription to ``topic``."""
        ready = self._ready.get(topic)
        if ready is None or ready.done():
            self._ready[topic] = asyncio.get_running_loop().create_future()

    async def _reconcile_quietly(self, topic: str) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._reconcile(topic)

    async def _connect(self) -> Any:
        """A fresh pub/sub connection subscribed to every topic with a local subscriber."""
        assert self._client is not None and self._sync_lock is not None
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._control)
            async with self._sync_lock:
                topics = self._local.topics()
                for topic in topics:
                    self._await_confirmation(topic)
                if topics:
                    await pubsub.subscribe(*(self._channel_prefix + t for t in topics))
                self._subscribed = set(topics)
                self._pubsub = pubsub
        except BaseException:
            with contextlib.suppress(*_FAILURES):
                await pubsub.aclose()
            raise
        return pubsub

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub, self._subscribed = self._pubsub, None, set()
        if pubsub is not None:
            with contextlib.suppress(*_FAILURES):
                await pubsub.aclose()

    # ------------------------------------------------------------------ the two loops

    async def _read_forever(self) -> None:
        backoff = self._backoff_s
        while True:
            try:
                pubsub = await self._connect()
                connected = True
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
                        if connected:  # a message arrived: this connection works
                            backoff, connected = self._backoff_s, False
            except _FAILURES as exc:
                logger.warning("stream: Redis pub/sub connection lost (%s); retrying in %.1fs",
                               type(exc).__name__, backoff)
                await self._drop_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(self._max_backoff_s, backoff * 2)

    def _handle(self, message: dict[str, Any]) -> None:
        channel = str(message.get("channel") or "")
        if not channel.startswith(self._channel_prefix) or channel == self._control:
            return
        topic = channel[len(self._channel_prefix):]
        if message["type"] == "subscribe":
            ready = self._ready.get(topic)
            if ready is not None and not ready.done():
                ready.set_result(None)
        elif message["type"] == "message":
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                logger.warning("stream: ignored a message that is not JSON on %s", channel)
                return
            if isinstance(event, dict):
                self._local.deliver(topic, event)

    async def _publish_forever(self) -> None:
        assert self._client is not None and self._wake is not None and self._idle is not None
        backoff = self._backoff_s
        while True:
            if not self._pending:
                self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                channel, data = self._pending[0]
                try:
                    await self._client.publish(channel, data)
                except _FAILURES as exc:
                    logger.warning("stream: could not publish (%s); retrying in %.1fs",
                                   type(exc).__name__, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(self._max_backoff_s, backoff * 2)
                    continue
                if self._pending and self._pending[0] == (channel, data):
                    self._pending.popleft()
                backoff = self._backoff_s
                if self._dropped:
                    logger.warning("stream: %d live event(s) were dropped while Redis was "
                                   "unreachable", self._dropped)
                    self._dropped = 0

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
