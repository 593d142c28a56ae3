"""What a turn stores besides the customer's message: the bot's replies, what the turn
understood (on the customer message), and its analytics events (``nlu.parse``, ``answer`` in
``core.outbox``), keyed by the customer message's id so a retried or replayed turn records
nothing twice. ``conversations.flows`` calls these inside the transaction that marks the
message done."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conversations import service
from conversations.data import Button, MessageData
from conversations.dialogue import Turn
from conversations.models import Message
from core import outbox
from core.db import utcnow


def store_turn(session: AsyncSession, *, message: Message, turn: Turn) -> list[Message]:
    stored: list[Message] = []
    for reply in turn.replies:
        citations = (reply.custom or {}).get("citations")
        if not reply.text and not reply.buttons:
            # Rasa delivers a response's custom payload as a message of its own: citations
            # belong to the text before them; control payloads (hand-off) carry nothing visible.
            if citations and stored:
                stored[-1].data = stored[-1].data.replace(citations=citations)
            continue
        buttons = [Button(title=b.get("title", ""), payload=b.get("payload", ""))
                   for b in reply.buttons or ()]
        stored.append(service.add_reply(session, conversation_id=message.conversation_id,
                                        reply_to=message.id, role="bot", text=reply.text or "",
                                        data=MessageData(buttons=buttons,
                                                         citations=citations or [])))
    message.status = service.DONE
    message.data = message.data.replace(
        intent=(turn.intent or {}).get("name"),
        confidence=(turn.intent or {}).get("confidence"),
        entities=[{"entity": e.get("entity"), "value": e.get("value")} for e in turn.entities],
        slots=turn.slots, active_loop=turn.active_loop,
        abstained=any((r.custom or {}).get("abstained") for r in turn.replies),
        abstain_reason=next((r.custom["reason"] for r in turn.replies
                             if r.custom and r.custom.get("abstained")
                             and r.custom.get("reason")), None),
        **({"audit": audit} if (audit := custom(turn, "audit")) is not None else {}))
    return stored


def custom(turn: Turn, key: str) -> Any:
    """The first value of ``key`` in the turn's custom payloads, or None."""
    return next((r.custom[key] for r in turn.replies if r.custom and key in r.custom), None)


def closes(turn: Turn) -> bool:
    """The dialogue closed the conversation (a ``{"resolve": true}`` custom payload)."""
    return bool(custom(turn, "resolve"))


async def record_turn(session: AsyncSession, *, message: Message, turn: Turn,
                       replies: list[Message], language: str, turn_ms: float) -> None:
    """Analytics events for one stored turn: what the NLU understood and, when the knowledge
    path answered (citations) or abstained, the answer."""
    intent = turn.intent or {}
    name = intent.get("name")
    at, conversation_id = utcnow(), message.conversation_id
    await outbox.record(session, kind="nlu.parse", key=f"nlu.parse:{message.id}",
                        conversation_id=conversation_id, at=at, language=language,
                        payload={"message_id": message.id, "intent": name,
                                 "confidence": intent.get("confidence"),
                                 "nlu_version": intent.get("model_version"),
                                 "canary": bool(intent.get("canary")),
                                 "fallback": name == "nlu_fallback", "turn_ms": turn_ms,
                                 "replayed": turn.replayed})
    citations = custom(turn, "citations")
    abstained = bool(message.data.abstained)
    if citations is None and not abstained:
        return
    cited = next((reply for reply in replies if reply.data.citations), None)
    payload: dict[str, Any] = {
        "message_id": (cited or message).id, "question": message.text, "intent": name,
        "sources": [str(c.get("source_id")) for c in citations or [] if isinstance(c, dict)],
        "abstained": abstained, "abstain_reason": message.data.abstain_reason,
        "generator": custom(turn, "generator")}
    if message.data.audit is not None:
        payload["audit"] = message.data.audit.model_dump(mode="json")
    await outbox.record(session, kind="answer", key=f"answer:{message.id}",
                        conversation_id=conversation_id, at=at, language=language,
                        payload=payload)
