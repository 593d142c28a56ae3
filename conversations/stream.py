"""Live updates over WebSockets: the in-process hub that fans events out to subscribers, and
the one pump that connects a socket to it.

One API process serves a conversation's subscribers; with several API processes put a sticky
load balancer in front (the widget reconnects and re-reads the transcript on reconnect).

``pump`` guarantees, for every live socket (the widget's and the agent console's):
- hub events reach the socket in order; a stalled client loses live events, never the
  transcript (the hub drops its oldest queued event);
- client frames that are JSON objects go to ``on_frame``; any other frame is ignored;
- a refused connection is accepted, then closed with ``4000 + the HTTP status`` and the error
  code as reason (a close before the handshake reaches browsers as a bare 1006); the same
  close ends a socket whose periodic ``check`` fails;
- the subscription ends with the socket, whichever side closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from core.errors import ParleyError

Event = dict[str, Any]


class StreamHub:
    def __init__(self, max_queue: int = 256) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._max_queue = max_queue

    def subscribe(self, topic: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._max_queue)
        self._subscribers[topic].add(queue)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                self._subscribers.pop(topic, None)

    def publish(self, topic: str, event: Event) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            if queue.full():  # a stalled client loses live events, never the transcript
                queue.get_nowait()
            queue.put_nowait(event)


async def refuse(websocket: WebSocket, error: ParleyError) -> None:
    """Close a socket that may not open: ``4000 + status``, the error code as reason."""
    await websocket.accept()  # accept first: a close before the handshake is a bare 1006
    await websocket.close(code=4000 + error.status_code, reason=error.code)


async def pump(websocket: WebSocket, hub: StreamHub, topic: str, *,
               on_frame: Callable[[Event], None], hello: Event | None = None,
               check: Callable[[], Awaitable[None]] | None = None,
               check_every_s: float = 10.0) -> None:
    """Forward ``topic``'s events to an accepted socket while reading its frames, until the
    client goes away. ``hello`` is sent first, once subscribed; ``check`` runs every
    ``check_every_s`` and a ``ParleyError`` from it closes the socket (see ``refuse``)."""
    queue = hub.subscribe(topic)
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
                await websocket.send_json(getter.result())
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
