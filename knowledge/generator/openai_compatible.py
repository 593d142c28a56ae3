"""A client for OpenAI-compatible chat completion servers (vLLM in production).

Streaming (server-sent events), a timeout per request, retries with backoff before the
first token, and a circuit breaker: after ``failure_threshold`` consecutive failures the
generator reports itself unavailable for ``reset_after_s`` so callers fall back at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx

from knowledge.generator.protocol import ChatMessage, GeneratorUnavailable


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 3, reset_after_s: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.reset_after_s:
            return True  # half-open: let one request try
        return False

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic()


class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model: str, *, api_key: str = "", timeout_s: float = 30.0,
                 retries: int = 2, breaker: CircuitBreaker | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.retries = retries
        self.breaker = breaker or CircuitBreaker()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(timeout_s, connect=5.0),
                                         transport=transport)

    async def available(self) -> bool:
        return self.breaker.allow()

    async def stream(self, messages: list[ChatMessage], *, max_tokens: int = 256,
                     temperature: float = 0.0) -> AsyncIterator[str]:
        if not self.breaker.allow():
            raise GeneratorUnavailable("circuit open")
        payload = {"model": self.model, "stream": True, "max_tokens": max_tokens,
                   "temperature": temperature,
                   "messages": [{"role": m.role, "content": m.content} for m in messages]}
        for attempt in range(self.retries + 1):
            started = False
            try:
                async with self._client.stream("POST", "/chat/completions",
                                               json=payload) as response:
                    if response.status_code >= 500 or response.status_code == 429:
                        raise GeneratorUnavailable(f"HTTP {response.status_code}")
                    if response.status_code != 200:
                        self.breaker.failure()
                        raise GeneratorUnavailable(f"HTTP {response.status_code}")
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        choice = (json.loads(data).get("choices") or [{}])[0]
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            started = True
                            yield piece
                self.breaker.success()
                return
            except (httpx.HTTPError, GeneratorUnavailable, json.JSONDecodeError) as exc:
                self.breaker.failure()
                if started or attempt == self.retries or not self.breaker.allow():
                    raise GeneratorUnavailable(str(exc) or type(exc).__name__) from exc
                await asyncio.sleep(0.2 * 2 ** attempt)

    async def aclose(self) -> None:
        await self._client.aclose()
