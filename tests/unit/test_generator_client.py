"""The OpenAI-compatible (vLLM) client: streaming, retries before the first token, and the
circuit breaker. No vLLM server can run here, so an in-process transport plays the server's
side of the protocol (server-sent events)."""

from __future__ import annotations

import json

import httpx
import pytest

from knowledge.generator.openai_compatible import CircuitBreaker, OpenAICompatibleGenerator
from knowledge.generator.protocol import ChatMessage, GeneratorUnavailable

pytestmark = pytest.mark.unit
MESSAGES = [ChatMessage("system", "rules"), ChatMessage("user", "Sources: [1] x\n\nQuestion: y")]


def sse(*pieces: str) -> bytes:
    lines = [f"data: {json.dumps({'choices': [{'delta': {'content': p}}]})}\n\n" for p in pieces]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


class Server:
    """Answers each request with the next scripted (status, body)."""

    def __init__(self, *responses: tuple[int, bytes]) -> None:
        self.responses = list(responses)
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        status, body = self.responses.pop(0)
        return httpx.Response(status, content=body,
                              headers={"content-type": "text/event-stream"})


async def collect(generator: OpenAICompatibleGenerator) -> str:
    return "".join([piece async for piece in generator.stream(MESSAGES, max_tokens=32)])


async def test_streams_the_answer_and_sends_the_chat_request():
    server = Server((200, sse("Opened blenders ", "can be returned [1].")))
    generator = OpenAICompatibleGenerator("http://vllm/v1", "qwen", api_key="k",
                                          transport=httpx.MockTransport(server))
    assert await collect(generator) == "Opened blenders can be returned [1]."
    (request,) = server.requests
    assert request["stream"] is True and request["model"] == "qwen"
    assert [m["role"] for m in request["messages"]] == ["system", "user"]


async def test_retries_a_failure_before_the_first_token():
    server = Server((503, b"busy"), (200, sse("ok.")))
    generator = OpenAICompatibleGenerator("http://vllm/v1", "m", retries=2,
                                          transport=httpx.MockTransport(server))
    assert await collect(generator) == "ok."
    assert len(server.requests) == 2


async def test_the_circuit_opens_after_repeated_failures_and_callers_fall_back():
    server = Server(*[(500, b"down")] * 3)
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=60)
    generator = OpenAICompatibleGenerator("http://vllm/v1", "m", retries=2, breaker=breaker,
                                          transport=httpx.MockTransport(server))
    with pytest.raises(GeneratorUnavailable):
        await collect(generator)
    assert not await generator.available()
    with pytest.raises(GeneratorUnavailable, match="circuit open"):
        await collect(generator)
    assert len(server.requests) == 3  # the open circuit sent nothing
