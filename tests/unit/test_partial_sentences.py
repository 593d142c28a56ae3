"""The action server posts each checked sentence to the API as it is written: with the internal
token, over one kept-alive connection per event loop (a client per sentence cost tens of
milliseconds), and a down API costs the answer nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.actions import deps
from core.config import get_settings
from tests.stack import free_port

pytestmark = pytest.mark.unit


async def _serve(received: list[tuple[int, str, dict[str, str], dict[str, str]]]
                 ) -> asyncio.Server:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:]
                                                 if ": " in line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received.append((number, lines[0], headers, json.loads(body)))
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            if reader.at_eof():
                break

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_sentences_reach_the_api_over_one_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[tuple[int, str, dict[str, str], dict[str, str]]] = []
    server = await _serve(received)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("PARLEY_API_PORT", str(port))
    monkeypatch.setenv("PARLEY_RASA_TOKEN", "internal-token-for-this-test")
    get_settings.cache_clear()
    try:
        await deps.stream_partial("c-1", "Returns are free within 30 days.")
        await deps.stream_partial("c-1", "Refunds take 5 business days.")
    finally:
        get_settings.cache_clear()
        server.close()
    assert [(r[1], r[3]) for r in received] == [
        ("POST /internal/v1/conversations/c-1/partial HTTP/1.1",
         {"text": "Returns are free within 30 days."}),
        ("POST /internal/v1/conversations/c-1/partial HTTP/1.1",
         {"text": "Refunds take 5 business days."})]
    assert {r[2]["authorization"] for r in received} == {"Bearer internal-token-for-this-test"}
    assert {r[0] for r in received} == {1}  # one connection, kept alive


async def test_an_unreachable_api_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_API_PORT", str(free_port()))
    get_settings.cache_clear()
    try:
        await deps.stream_partial("c-1", "Returns are free within 30 days.")
    finally:
        get_settings.cache_clear()
