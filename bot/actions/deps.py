"""What actions depend on, built once per action-server process (tests swap ``_graph`` and
``_answerer``).

Orders come from the company store; products and policies from the company graph, the store
the knowledge-base editor writes, so what an admin saves there is what the chat finds.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache
from typing import Any

from core import tracing
from core.config import get_settings
from knowledge.answer import Answerer
from knowledge.embedded import SQLiteCompanyStore
from knowledge.graph.protocol import GraphStore
from knowledge.protocol import CompanyStore


@lru_cache
def company_store() -> CompanyStore:
    settings = get_settings()
    return SQLiteCompanyStore(settings.company_data_dir, settings.var_dir / "knowledge.db")


def language_of(tracker: Any) -> str:
    return tracker.get_slot("language") or "en"


_graph: GraphStore | None = None
_answerer: Answerer | None = None


def graph() -> GraphStore:
    """The company graph: products, policies and their relations."""
    global _graph
    if _graph is None:
        from knowledge.factory import graph_store

        _graph = graph_store(get_settings())
    return _graph


def answerer() -> Answerer:
    """The knowledge answerer (embedder and stores load on first use); it reads ``graph()``."""
    global _answerer
    if _answerer is None:
        from knowledge.factory import answerer as build

        _answerer = build(get_settings(), graph=graph())
    return _answerer


# One HTTP client per event loop for the partial sentences: building one costs tens of
# milliseconds (its TLS context), more than posting a sentence on loopback.
_partial_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary())


def _partial_client() -> Any:
    import httpx

    loop = asyncio.get_running_loop()
    client = _partial_clients.get(loop)
    if client is None or client.is_closed:
        client = _partial_clients[loop] = httpx.AsyncClient(timeout=1.0)
    return client


async def stream_partial(conversation_id: str, text: str) -> None:
    """Show a checked sentence in the widget while the rest of the answer is written."""
    import httpx

    settings = get_settings()
    try:
        await _partial_client().post(
            f"http://{settings.api_host}:{settings.api_port}/internal/v1/conversations/"
            f"{conversation_id}/partial", json={"text": text},
            headers={"Authorization": f"Bearer {settings.rasa_token.get_secret_value()}",
                     **tracing.inject()})
    except httpx.HTTPError:
        pass  # the final message still arrives through Rasa
