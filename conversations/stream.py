"""Live updates for a conversation's WebSocket subscribers (in-process fan-out).

One API process serves a conversation's subscribers; with several API processes put a sticky
load balancer in front (the widget reconnects and re-reads the transcript on reconnect).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any


class StreamHub:
    def __init__(self, max_queue: int = 256) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._max_queue = max_queue

    def subscribe(self, conversation_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._max_queue)
        self._subscribers[conversation_id].add(queue)
        return queue

    def unsubscribe(self, conversation_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        subscribers = self._subscribers.get(conversation_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                self._subscribers.pop(conversation_id, None)

    def publish(self, conversation_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(conversation_id, ())):
            if queue.full():  # a stalled client loses live events, never the transcript
                queue.get_nowait()
            queue.put_nowait(event)

    def subscriber_count(self, conversation_id: str) -> int:
        return len(self._subscribers.get(conversation_id, ()))
