"""The API asks the NLU service for each turn's parse and sends it along to Rasa
(``conversations.dialogue.RasaDialogue``): asynchronously, without Rasa's token, never for a
button payload, for exactly the text Rasa will see, and a failing service is a 503."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conversations.dialogue import RasaDialogue
from core.errors import DependencyUnavailable

pytestmark = pytest.mark.unit

PARSE = {"text": "", "intent": {"name": "greet", "confidence": 0.9}, "intent_ranking": [],
         "entities": [], "language": "en", "model_version": "v1", "canary": False}


def dialogue(nlu: Any) -> tuple[RasaDialogue, list[httpx.Request], list[httpx.Request]]:
    """A RasaDialogue whose NLU service answers with ``nlu(request)`` and whose Rasa replies
    with one message; what each was sent."""
    to_nlu: list[httpx.Request] = []
    to_rasa: list[httpx.Request] = []

    def nlu_handler(request: httpx.Request) -> httpx.Response:
        to_nlu.append(request)
        return nlu(request)

    def rasa_handler(request: httpx.Request) -> httpx.Response:
        to_rasa.append(request)
        return httpx.Response(200, json={"messages": [{"text": "Hi!"}], "intent": {}})

    engine = RasaDialogue("http://rasa", token="rasa-secret", nlu_url="http://nlu")
    engine._client = httpx.AsyncClient(base_url="http://rasa",
                                       transport=httpx.MockTransport(rasa_handler),
                                       headers={"Authorization": "Bearer rasa-secret"})
    assert engine._nlu is not None
    engine._nlu = httpx.AsyncClient(transport=httpx.MockTransport(nlu_handler))
    return engine, to_nlu, to_rasa


def echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={**PARSE, "text": json.loads(request.content)["text"]})


async def test_the_parse_travels_with_the_message_and_the_token_does_not() -> None:
    engine, to_nlu, to_rasa = dialogue(echo)
    turn = await engine.handle("c-1", "hello", message_id="m-1", metadata={"locale": "zh"})
    assert turn.replies[0].text == "Hi!"
    (asked,) = to_nlu
    assert asked.url.path == "/model/parse" and "authorization" not in asked.headers
    assert json.loads(asked.content) == {"text": "hello", "conversation_id": "c-1",
                                         "locale": "zh"}
    sent = json.loads(to_rasa[0].content)["metadata"]
    assert sent["parley_parse"]["text"] == "hello" and sent["parley_message_id"] == "m-1"
    await engine.aclose()


async def test_a_button_payload_is_rasas_to_read_and_typed_commands_are_parsed_as_rasa_sees_them(
        ) -> None:
    engine, to_nlu, to_rasa = dialogue(echo)
    await engine.handle("c-1", "/request_human", message_id="m-1", metadata={"payload": True})
    assert to_nlu == [] and "parley_parse" not in json.loads(to_rasa[0].content)["metadata"]
    await engine.handle("c-1", " /restart", message_id="m-2", metadata={})
    # The Parley channel hands Rasa a full-width solidus: the parse is of that text.
    assert json.loads(to_nlu[0].content)["text"] == "\uff0frestart"
    await engine.aclose()


@pytest.mark.parametrize("answer", [
    lambda r: httpx.Response(503, json={"error": "down"}),
    lambda r: httpx.Response(200, text="<html>proxy error</html>"),
    lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")),
])
async def test_a_failing_nlu_service_is_a_503_and_rasa_is_not_asked(answer: Any) -> None:
    engine, _, to_rasa = dialogue(answer)
    with pytest.raises(DependencyUnavailable) as raised:
        await engine.handle("c-1", "hello", message_id="m-1", metadata={})
    assert raised.value.code == "dialogue_unavailable" and to_rasa == []
    await engine.aclose()
