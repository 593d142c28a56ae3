"""The stream hub contract against both hubs: in process, and Redis pub/sub between two hub
instances with connections of their own (two API processes, as far as Redis can tell).

The Redis hub runs against the server on 127.0.0.1:6379 under a key prefix of its own per
test (pub/sub channels ignore the database number). Without a server there it is skipped,
or fails under CI.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis

from conversations.redis_stream import RedisStreamHub
from conversations.stream import InProcessStreamHub, StreamHub, create_hub
from tests.contract.stream_hub import StreamHubContract, next_event, nothing_more
from tests.servers import REDIS_URL, require_redis

pytestmark = pytest.mark.unit

Pair = Callable[..., Awaitable[tuple[StreamHub, StreamHub]]]


class TestInProcessStreamHub(StreamHubContract):
    @pytest.fixture
    async def pair(self) -> AsyncIterator[Pair]:
        async def make(max_queue: int = 256) -> tuple[StreamHub, StreamHub]:
            hub = InProcessStreamHub(max_queue)
            await hub.start()
            return hub, hub

        yield make


class TestRedisStreamHub(StreamHubContract):
    @pytest.fixture
    async def pair(self) -> AsyncIterator[Pair]:
        require_redis()
        prefix = f"parley-test-{uuid.uuid4().hex}"
        made: list[RedisStreamHub] = []

        async def make(max_queue: int = 256) -> tuple[StreamHub, StreamHub]:
            hubs = [RedisStreamHub(REDIS_URL, prefix=prefix, max_queue=max_queue,
                                   client_name=f"{prefix}-{n}") for n in (0, 1)]
            for hub in hubs:
                await hub.start()
            made.extend(hubs)
            return hubs[0], hubs[1]

        yield make
        for hub in made:
            await hub.aclose()

    async def test_the_reader_reconnects_and_subscribes_again(self, pair: Pair) -> None:
        publisher, subscriber = await pair()
        queue = await subscriber.subscribe("conv-1")
        publisher.publish("conv-1", {"type": "n", "n": 1})
        assert (await next_event(queue))["n"] == 1
        assert isinstance(subscriber, RedisStreamHub)
        killed = _kill_connections(subscriber._client_name)  # Redis drops the process
        assert killed >= 1
        for n in range(2, 200):  # until the reader is back (pub/sub: at most once meanwhile)
            publisher.publish("conv-1", {"type": "n", "n": n})
            try:
                event = await next_event(queue, 0.1)
            except TimeoutError:
                continue
            break
        else:
            pytest.fail("the subscriber never came back")
        assert event["n"] >= 2
        later = event["n"] + 1000
        publisher.publish("conv-1", {"type": "n", "n": later})
        seen = [event["n"]]
        while seen[-1] != later:
            seen.append((await next_event(queue))["n"])
        assert seen == sorted(seen)  # still in order

    async def test_the_publisher_keeps_events_while_redis_is_away(self, pair: Pair) -> None:
        publisher, subscriber = await pair()
        queue = await subscriber.subscribe("conv-1")
        assert isinstance(publisher, RedisStreamHub)
        _kill_connections(publisher._client_name, kind="normal")
        for n in range(5):
            publisher.publish("conv-1", {"type": "n", "n": n})
        assert [(await next_event(queue))["n"] for _ in range(5)] == list(range(5))
        assert await nothing_more(queue, 0.1)

    async def test_aclose_sends_what_is_queued(self) -> None:
        require_redis()
        prefix = f"parley-test-{uuid.uuid4().hex}"
        subscriber = RedisStreamHub(REDIS_URL, prefix=prefix)
        queue = await subscriber.subscribe("conv-1")
        publisher = RedisStreamHub(REDIS_URL, prefix=prefix)
        try:
            publisher.publish("conv-1", {"type": "last"})  # starts the hub on first use
            await asyncio.sleep(0)
            await publisher.aclose()
            assert await next_event(queue) == {"type": "last"}
        finally:
            await subscriber.aclose()


def _kill_connections(name: str, kind: str = "pubsub") -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ids = [c["id"] for c in client.client_list(_type=kind) if c.get("name") == name]
        return sum(bool(client.client_kill_filter(_id=i)) for i in ids)
    finally:
        client.close()


def test_the_url_picks_the_hub() -> None:
    assert isinstance(create_hub(""), InProcessStreamHub)
    assert isinstance(create_hub("redis://127.0.0.1:6379/0", prefix="x"), RedisStreamHub)
    with pytest.raises(ValueError, match="PARLEY_STREAM_URL"):
        create_hub("amqp://127.0.0.1")
