"""The ``StreamHub`` contract (``conversations.stream``), written once for every hub.

Subclass ``StreamHubContract`` and provide a ``pair`` fixture: an async factory
``pair(max_queue=256)`` returning ``(publisher, subscriber)``, two started hubs as two API
processes would hold them. A hub that serves one process returns the same object twice; one
that spans processes returns two instances with connections of their own. The fixture closes
what it made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conversations.stream import Event

TIMEOUT_S = 5.0


async def next_event(queue: asyncio.Queue[Event], timeout_s: float = TIMEOUT_S) -> Event:
    return await asyncio.wait_for(queue.get(), timeout_s)


async def nothing_more(queue: asyncio.Queue[Event], wait_s: float = 0.3) -> bool:
    await asyncio.sleep(wait_s)
    return queue.empty()


class StreamHubContract:
    async def test_an_event_published_in_one_process_reaches_another(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        queue = await subscriber.subscribe("conv-1")
        publisher.publish("conv-1", {"type": "message", "message": {"text": "你好", "n": 1}})
        assert await next_event(queue) == {"type": "message",
                                           "message": {"text": "你好", "n": 1}}

    async def test_events_arrive_as_their_json_round_trip(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        queue = await subscriber.subscribe("conv-1")
        event = {"type": "state", "pair": (1, 2), "none": None, "ok": True, "x": 1.5}
        publisher.publish("conv-1", event)
        assert await next_event(queue) == {"type": "state", "pair": [1, 2], "none": None,
                                           "ok": True, "x": 1.5}
        assert event["pair"] == (1, 2)  # the publisher's object is untouched

    async def test_an_event_json_cannot_hold_is_refused_where_it_is_published(
            self, pair: Any) -> None:
        publisher, _ = await pair()
        with pytest.raises(TypeError):
            publisher.publish("conv-1", {"type": "message", "at": object()})

    async def test_one_topics_events_keep_their_order(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        first = await subscriber.subscribe("conv-1")
        second = await subscriber.subscribe("conv-2")
        for n in range(100):
            publisher.publish("conv-1" if n % 3 else "conv-2", {"type": "n", "n": n})
        got_first = [(await next_event(first))["n"] for _ in range(66)]
        got_second = [(await next_event(second))["n"] for _ in range(34)]
        assert got_first == [n for n in range(100) if n % 3]
        assert got_second == [n for n in range(100) if not n % 3]
        assert await nothing_more(first) and await nothing_more(second)

    async def test_every_subscriber_of_a_topic_gets_each_event_once(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        here = await publisher.subscribe("agents")
        there = [await subscriber.subscribe("agents") for _ in range(2)]
        publisher.publish("agents", {"type": "presence", "agent_id": 7})
        for queue in (here, *there):
            assert await next_event(queue) == {"type": "presence", "agent_id": 7}
            assert await nothing_more(queue, 0.1)

    async def test_topics_do_not_leak_into_each_other(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        queue = await subscriber.subscribe("conv-1")
        publisher.publish("conv-10", {"type": "message"})
        publisher.publish("conv-", {"type": "message"})
        assert await nothing_more(queue)

    async def test_an_unsubscribed_queue_gets_nothing_more(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        leaving = await subscriber.subscribe("conv-1")
        staying = await subscriber.subscribe("conv-1")
        publisher.publish("conv-1", {"type": "n", "n": 1})
        assert (await next_event(leaving))["n"] == 1 and (await next_event(staying))["n"] == 1
        subscriber.unsubscribe("conv-1", leaving)
        publisher.publish("conv-1", {"type": "n", "n": 2})
        assert (await next_event(staying))["n"] == 2
        assert await nothing_more(leaving)
        subscriber.unsubscribe("conv-1", staying)
        subscriber.unsubscribe("conv-1", staying)  # twice, or a queue it never knew: ignored
        subscriber.unsubscribe("conv-9", asyncio.Queue())
        publisher.publish("conv-1", {"type": "n", "n": 3})
        assert await nothing_more(staying)

    async def test_subscribing_again_after_everyone_left_works(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        for n in range(3):
            queue = await subscriber.subscribe("conv-1")
            publisher.publish("conv-1", {"type": "n", "n": n})
            assert (await next_event(queue))["n"] == n
            subscriber.unsubscribe("conv-1", queue)

    async def test_publishing_to_a_topic_nobody_reads_is_harmless(self, pair: Any) -> None:
        publisher, subscriber = await pair()
        publisher.publish("nobody", {"type": "message"})
        await asyncio.sleep(0.5)  # publishing is asynchronous: let it reach the broker first
        queue = await subscriber.subscribe("nobody")
        assert await nothing_more(queue)  # what was published before subscribing is not replayed

    async def test_a_stalled_subscriber_loses_its_oldest_events(self, pair: Any) -> None:
        publisher, subscriber = await pair(max_queue=3)
        stalled = await subscriber.subscribe("conv-1")
        reader = await subscriber.subscribe("conv-1")
        got: list[int] = []
        for n in range(10):
            publisher.publish("conv-1", {"type": "n", "n": n})
            got.append((await next_event(reader))["n"])  # keeps up
        assert got == list(range(10))
        assert [stalled.get_nowait()["n"] for _ in range(stalled.qsize())] == [7, 8, 9]
