"""The dialogue engine seam: what the web API needs from Rasa, and the Rasa HTTP client.

The web API only talks to Rasa through ``DialogueEngine``. ``RasaDialogue`` speaks to
Parley's Rasa input channel (``bot/components/parley_channel.py``), which is idempotent per
message id, so resending a turn after a crash never produces a second reply.

``RasaDialogue`` asks the NLU service for the parse itself, asynchronously, and hands it to
Rasa in the message's metadata (``parley_parse``), where Parley's NLU component takes it:
Rasa runs its NLU graph synchronously, so a parse requested from inside Rasa held Rasa's
event loop, and every other conversation's turn, for the whole HTTP round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from core import tracing
from core.errors import DependencyUnavailable


@dataclass
class BotReply:
    text: str | None
    buttons: list[dict[str, Any]] | None = None
    custom: dict[str, Any] | None = None


@dataclass
class Turn:
    replies: list[BotReply]
    intent: dict[str, Any] | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    active_loop: str | None = None
    replayed: bool = False


class DialogueEngine(Protocol):
    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        """Run one customer turn; must be idempotent on ``message_id``."""
        ...

    async def set_slots(self, conversation_id: str, slots: dict[str, Any], *,
                        new_conversation: bool = False) -> None:
        """Set slots in the dialogue state (an agent's hand-back carries what they learnt);
        ``new_conversation``: the dialogue has not seen this conversation yet."""
        ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...


# How Rasa begins a conversation (``action_session_start``'s events, then it listens).
SESSION_START = [{"event": "action", "name": "action_session_start"},
                 {"event": "session_started"},
                 {"event": "action", "name": "action_listen"}]


# Rasa reads a text starting with "/" as a command (``/intent{...}``). A verified button
# payload is one (Rasa's own handler reads it); any other such text the Parley channel makes
# harmless with a full-width solidus first (``customer_text`` in
# bot/components/parley_channel.py), so that is the text parsed here.
COMMAND_PREFIX = "/"
FULLWIDTH_SOLIDUS = "\uff0f"


def rasa_text(text: str) -> str:
    """``text`` as Parley's channel hands it to Rasa (not a button payload)."""
    stripped = text.lstrip()
    if stripped.startswith(COMMAND_PREFIX):
        return FULLWIDTH_SOLIDUS + stripped[len(COMMAND_PREFIX):]
    return text


class RasaDialogue:
    """``nlu_url``: Parley's NLU service, asked for each turn's parse before Rasa (None: Rasa's
    NLU component asks it)."""

    def __init__(self, base_url: str, *, token: str, timeout_s: float = 30.0,
                 nlu_url: str | None = None, nlu_timeout_s: float = 10.0) -> None:
        self._token = token
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                         headers={"Authorization": f"Bearer {token}"})
        self._nlu_url = nlu_url.rstrip("/") + "/model/parse" if nlu_url else None
        # A client of its own: the NLU service is not given Rasa's token.
        self._nlu = httpx.AsyncClient(timeout=nlu_timeout_s) if nlu_url else None

    async def parse(self, conversation_id: str, text: str, *,
                    metadata: dict[str, Any]) -> dict[str, Any] | None:
        """The NLU service's parse of ``text`` (None when Rasa's component should ask)."""
        if self._nlu is None or self._nlu_url is None or metadata.get("payload") is True:
            return None
        body: dict[str, Any] = {"text": rasa_text(text), "conversation_id": conversation_id}
        if isinstance(locale := metadata.get("locale"), str) and locale:
            body["locale"] = locale
        try:
            response = await self._nlu.post(self._nlu_url, json=body, headers=tracing.inject())
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("The language understanding service is not "
                                        "reachable; the message is stored and will be "
                                        "answered when it is back.",
                                        code="dialogue_unavailable") from exc
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The language understanding service could not parse the message "
                f"({response.status_code}); it is stored and will be answered when retried.",
                code="dialogue_unavailable")
        try:
            parse = response.json()
        except ValueError:
            parse = None
        if not isinstance(parse, dict):
            raise DependencyUnavailable("The language understanding service sent no parse; the "
                                        "message is stored and will be answered when retried.",
                                        code="dialogue_unavailable")
        return parse

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        parse = await self.parse(conversation_id, text, metadata=metadata)
        payload = {"sender": conversation_id, "message": text,
                   "metadata": {**metadata, "parley_message_id": message_id,
                                **({"parley_parse": parse} if parse is not None else {})}}
        try:
            # traceparent too, for a Rasa whose own tracing is on (Parley's reads the metadata)
            response = await self._client.post("/webhooks/parley/webhook", json=payload,
                                               headers=tracing.inject())
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("The dialogue manager is not reachable; the message "
                                        "is stored and will be answered when it is back.",
                                        code="dialogue_unavailable") from exc
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"The dialogue manager could not process the message ({response.status_code}); "
                "it is stored and will be answered when retried.", code="dialogue_unavailable")
        body = response.json()
        replies = [BotReply(text=m.get("text"), buttons=m.get("buttons"), custom=m.get("custom"))
                   for m in body.get("messages", [])]
        return Turn(replies=replies, intent=body.get("intent"), entities=body.get("entities", []),
                    slots=body.get("slots") or {}, active_loop=body.get("active_loop"),
                    replayed=bool(body.get("replayed")))

    async def set_slots(self, conversation_id: str, slots: dict[str, Any], *,
                        new_conversation: bool = False) -> None:
        events = [{"event": "slot", "name": name, "value": value} for name, value in slots.items()]
        if not events:
            return
        if new_conversation:
            # Rasa would start the session itself, stamped after these events, and its tracker
            # store reads back only what is stamped since the latest session start: the
            # slots would be lost. The session starts here, before them.
            events = [*SESSION_START, *events]
        try:
            response = await self._client.post(
                f"/conversations/{conversation_id}/tracker/events",
                params={"token": self._token, "include_events": "NONE"}, json=events)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("The dialogue manager is not reachable.",
                                        code="dialogue_unavailable") from exc
        if response.status_code != 200:
            raise DependencyUnavailable(f"Rasa refused the slots ({response.status_code}).",
                                        code="dialogue_unavailable")

    async def ready(self) -> bool:
        try:
            status = await self._client.get("/status", params={"token": self._token},
                                            timeout=2.0)
        except httpx.HTTPError:
            return False
        return status.status_code == 200 and bool(status.json().get("model_file"))

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._nlu is not None:
            await self._nlu.aclose()
