"""What actions depend on, built once per action-server process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.config import get_settings
from knowledge.embedded import SQLiteCompanyStore
from knowledge.protocol import CompanyStore


@lru_cache
def company_store() -> CompanyStore:
    settings = get_settings()
    return SQLiteCompanyStore(settings.company_data_dir, settings.var_dir / "knowledge.db")


def language_of(tracker: Any) -> str:
    return tracker.get_slot("language") or "en"


_answerer = None


def answerer():  # type: ignore[no-untyped-def]
    """The knowledge answerer (embedder and stores load on first use)."""
    global _answerer
    if _answerer is None:
        from knowledge.factory import answerer as build

        _answerer = build(get_settings())
    return _answerer


async def stream_partial(conversation_id: str, text: str) -> None:
    """Show a checked sentence in the widget while the rest of the answer is written."""
    import httpx

    settings = get_settings()
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            await client.post(
                f"http://{settings.api_host}:{settings.api_port}/internal/v1/conversations/"
                f"{conversation_id}/partial", json={"text": text},
                headers={"Authorization": f"Bearer {settings.rasa_token.get_secret_value()}"})
    except httpx.HTTPError:
        pass  # the final message still arrives through Rasa
