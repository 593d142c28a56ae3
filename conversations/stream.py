"""Live updates over WebSockets: the hub that fans events out to subscribers, and the one
pump that connects a socket to it.

``StreamHub`` is the protocol; two implementations ship:
- ``InProcessStreamHub`` (the embedded default): one API process, events fanned out in memory;
- ``conversations.redis_stream.RedisStreamHub`` (``PARLEY_STREAM_URL=redis://…``): several API
  processes, on one machine or many, share every topic through Redis pub/sub, so a customer's
  socket and an agent's console may sit on different processes (no sticky sessions).

Both deliver the same thing (tests/contract/stream_hub.py): an event is a JSON object and
arrives as its JSON round trip; one topic's events arrive in the order they were published;
a stalled subscriber loses its oldest queued events, never the transcript; once ``subscribe``
has returned, every later event of the topic reaches the queue.

``pump`` guarantees, for every live socket (the widget's and the agent console's):
- hub events reach the socket in order; a stalled client loses live events, never the
  transcript (the hub drops its oldest queued event);
- client frames that are JSON objects go to ``on_frame``; any other frame is ignored;
- a refused connection is accepted, then closed with ``4000 + the HTTP status`` and the error
  code as reason (a close before the handshake reaches browsers as a bare 1006); the same
  close ends a socket whose periodic ``check`` fails;
- ``hello`` is sent once the subscription is live, so nothing published after it is missed;
- the subscription ends with the socket, whichever side closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import WebSocket, WebSocketDisconnect

from core.errors import ParleyError

Event = dict[str, Any]


class StreamHub(Protocol):
    """Topics (a conversation id, ``agents``) and their subscribers' queues."""

    async def start(self) -> None:
        """Connect what the hub needs (called by the app's lifespan; idempotent)."""

    async def subscribe(self, topic: str) -> asyncio.Queue[Event]:
        """A new queue that receives every event of ``topic`` published from now on."""

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        """Stop delivering to ``queue`` (unknown queues are ignored)."""

    def publish(self, topic: str, event: Event) -> None:
        """Send ``event`` (a JSON object) to the topic's subscribers; never blocks."""

    async def aclose(self) -> None:
        """Deliver what is still queued for other processes, then disconnect."""


def encode(event: Event) -> str:
    """The wire form of an event; a value JSON cannot hold raises ``TypeError`` here, in the
    publisher, whichever hub is configured."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class Fanout:
    """This process's subscribers: bounded queues per topic, the oldest event dropped when a
    queue is full."""

    def __init__(self, max_queue: int = 256) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._max_queue = max_queue

    def add(self, topic: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._max_queue)
        self._subscribers[topic].add(queue)
        return queue

    def remove(self, topic: str, queue: asyncio.Queue[Event]) -> bool:
        """Forget ``queue``; True when ``topic`` has no subscriber left here."""
        subscribers = self._subscribers.get(topic)
        if subscribers is None:
            return False
        subscribers.discard(queue)
        if subscribers:
            return False
        del self._subscribers[topic]
        return True

    def has(self, topic: str) -> bool:
        return topic in self._subscribers

    def topics(self) -> list[str]:
        return list(self._subscribers)

    def deliver(self, topic: str, event: Event) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            if queue.full():  # a stalled client loses live events, never the transcript
                queue.get_nowait()
            queue.put_nowait(event)


class InProcessStreamHub:
    """One API process: events go straight to this process's queues."""

    def __init__(self, max_queue: int = 256) -> None:
        self._local = Fanout(max_queue)

    async def start(self) -> None:
        return None

    async def subscribe(self, topic: str) -> asyncio.Queue[Event]:
        return self._local.add(topic)

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        self._local.remove(topic, queue)

    def publish(self, topic: str, event: Event) -> None:
        # The JSON round trip every other hub makes: subscribers never share the publisher's
        # objects, and what cannot cross a process boundary fails here too.
        self._local.deliver(topic, json.loads(encode(event)))

    async def aclose(self) -> None:
        return None


def create_hub(url: str, *, prefix: str = "parley") -> StreamHub:
    """The hub ``PARLEY_STREAM_URL`` names: "" in process, ``redis://…`` Redis pub/sub."""
    if not url:
        return InProcessStreamHub()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from conversations.redis_stream import RedisStreamHub

        return RedisStreamHub(url, prefix=prefix)
    raise ValueError(f"PARLEY_STREAM_URL: unsupported scheme in {url.split('://')[0]!r} "
                     "(use redis://host:port/db, or leave it empty for one process)")


async def refuse(websocket: WebSocket, error: ParleyError) -> None:
    """Close a socket that may not open: ``4000 + status``, the error code as reason."""
    await websocket.accept()  # accept first: a close before the handshake is a bare 1006
    await websocket.close(code=4000 + error.status_code, reason=error.code)


async def pump(websocket: WebSocket, hub: StreamHub, topic: str, *,
               on_frame: Callable[[Event], None], hello: Event | None = None,
               check: Callable[[], Awaitable[None]] | None = None,
               check_every_s: float = 10.0,
               allow: Callable[[Event], Awaitable[bool]] | None = None) -> None:
    """Forward ``topic``'s events to an accepted socket while reading its frames, until the
    client goes away. ``hello`` is sent first, once subscribed; ``check`` runs every
    ``check_every_s`` and a ``ParleyError`` from it closes the socket (see ``refuse``);
    ``allow`` decides which events this subscriber sees (all when None)."""
    queue = await hub.subscribe(topic)
    receiver = asyncio.create_task(_read(websocket, on_frame))
    checked = time.monotonic()
    try:
        if hello is not None:
            await websocket.send_json(hello)
        while not receiver.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, receiver},
                                         timeout=check_every_s if check else None,
                                         return_when=asyncio.FIRST_COMPLETED)
            if check is not None and time.monotonic() - checked >= check_every_s:
                try:
                    await check()
                except ParleyError as exc:
                    getter.cancel()
                    await websocket.close(code=4000 + exc.status_code, reason=exc.code)
                    return
                checked = time.monotonic()
            if getter in done:
                event = getter.result()
                if allow is None or await allow(event):
                    await websocket.send_json(event)
            else:
                getter.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-send
    finally:
        hub.unsubscribe(topic, queue)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _read(websocket: WebSocket, on_frame: Callable[[Event], None]) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            frame = json.loads(message.get("text") or "null")
        except ValueError:
            continue
        if isinstance(frame, dict):
            on_frame(frame)
