"""What the answer flow needs from a text generator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


class Generator(Protocol):
    name: str

    def stream(self, messages: list[ChatMessage], *, max_tokens: int = 256,
               temperature: float = 0.0) -> AsyncIterator[str]:
        """Yield the answer's text in pieces as they are produced."""
        ...

    async def available(self) -> bool: ...


class GeneratorUnavailable(RuntimeError):
    """The generator cannot answer now (down, timed out, circuit open)."""
