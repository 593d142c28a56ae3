"""One customer turn, end to end: store → Rasa → store replies → publish.

Guarantees:
- the customer message is committed (``pending``) before Rasa sees it;
- its replies and its ``done`` mark are committed in one transaction;
- a retry with the same ``client_message_id`` returns the stored reply, or finishes a turn a
  crash interrupted; Rasa's channel is idempotent per message id, so the customer never gets
  a second reply;
- turns of one conversation run one at a time;
- what the turn understood and answered is recorded for analytics (``nlu.parse``, ``answer``
  in ``core.outbox``) in the transaction that stores its replies, keyed by the customer
  message's id, so a retried or replayed turn records nothing twice.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversations import locks, service, turns
from conversations.data import MessageData
from conversations.dialogue import DialogueEngine, Turn
from conversations.escalation import Escalation, TurnSignals
from conversations.models import Conversation, Message
from conversations.schemas import MessageCreate, TurnPublic
from conversations.state import (
    State,
    bot_is_active,
    request_handoff,
    resolve_by_bot,
    transition,
)
from conversations.stream import StreamHub
from core import metrics, tracing
from core.errors import Conflict, ParleyError, Unprocessable

logger = logging.getLogger(__name__)


def conversation_lock(conversation_id: str) -> AbstractAsyncContextManager[None]:
    """Held while a turn (or a hand-back) runs: one at a time per conversation, across API
    processes when this process's locks say so (conversations/locks.py)."""
    return locks.current().hold(conversation_id)


@tracing.traced("parley.turn", attributes={"parley.conversation_id": "conversation_id"})
async def post_customer_message(
    *, maker: async_sessionmaker[AsyncSession], dialogue: DialogueEngine, hub: StreamHub,
    escalation: Escalation, conversation_id: str, body: MessageCreate, max_chars: int,
) -> TurnPublic:
    text = service.validate_text(body.text, max_chars=max_chars)
    async with conversation_lock(conversation_id):
        stored: TurnStored | None = None
        async with maker() as session:
            conversation = await service.get_conversation(session,
                                                          conversation_id=conversation_id)
            message = await service.find_customer_message(
                session, conversation_id=conversation_id,
                client_message_id=body.client_message_id)
            inserted = False
            if message is None:
                if body.payload is not None:  # a button click: its title is what is stored
                    text = await _offered_title(session, conversation_id=conversation_id,
                                                payload=body.payload, text=text)
                message = Message(conversation_id=conversation_id, role="customer", text=text,
                                  client_message_id=body.client_message_id,
                                  status=service.PENDING,
                                  data=MessageData(payload=body.payload))
                session.add(message)
                inserted = True
            elif message.data.payload != body.payload or (body.payload is None
                                                           and message.text != text):
                raise Conflict("This client_message_id was already used for another text.",
                               code="client_message_id_reused")
            # The message and what it does to the conversation commit together: stored first,
            # before the bot runs (a crash from here on leaves it pending, for recovery).
            answer: bool | None
            state_before = conversation.state  # whom the customer's message reaches
            answer, reopened = _admit(session, message=message, conversation=conversation)
            try:
                await session.commit()
            except IntegrityError:  # another API process stored it first
                await session.rollback()
                message = await service.find_customer_message(
                    session, conversation_id=conversation_id,
                    client_message_id=body.client_message_id)
                assert message is not None
                inserted = reopened = False
                answer = None  # theirs: run it as recovery would, if it is still pending
            if inserted:
                metrics.MESSAGES.labels(role="customer").inc()
                publish(hub, conversation_id, state_before,
                        {"type": "message", "message": _dump(service.to_public(message))})
            if reopened:
                publish(hub, conversation_id, State.BOT, {"type": "state", "state": State.BOT})
            locale = conversation.locale
        tracing.annotate({"parley.message_id": message.id})  # never the text
        if answer:
            stored = await _run_turn(maker=maker, dialogue=dialogue, hub=hub,
                                     escalation=escalation, message_id=message.id,
                                     conversation_id=conversation_id, text=message.text,
                                     payload=message.data.payload, locale=locale)
        elif answer is None:
            stored = await process_pending(maker=maker, dialogue=dialogue, hub=hub,
                                           escalation=escalation, message_id=message.id,
                                           locale=locale)
        if stored is not None:  # this request stored the turn: its replies are at hand
            return TurnPublic(messages=[service.to_public(message),
                                        *(service.to_public(r) for r in stored.replies)],
                              state=State(stored.state))
        async with maker() as session:
            conversation = await service.get_conversation(session,
                                                          conversation_id=conversation_id)
            replies = await service.replies_to(session, message_id=message.id)
            return TurnPublic(messages=[service.to_public(message),
                                        *(service.to_public(r) for r in replies)],
                              state=State(conversation.state))


@dataclass
class TurnStored:
    """What a turn stored: its replies and the conversation's state after it."""

    replies: list[Message]
    state: str


def _admit(session: AsyncSession, *, message: Message,
           conversation: Conversation) -> tuple[bool, bool]:
    """Whether the bot answers a pending customer message now, and whether that reopens a
    resolved conversation; changes are left in ``session`` for the caller to commit. While a
    human holds the conversation the bot is paused: the message is done, it waits for the
    agent."""
    if message.status != service.PENDING:
        return False, False
    if not bot_is_active(conversation):
        message.status = service.DONE
        return False, False
    if conversation.state == State.RESOLVED:  # the customer writes again: the bot answers
        transition(session, conversation=conversation, to=State.BOT, actor="customer",
                   reason="new message after resolution")
        return True, True
    return True, False


async def process_pending(
    *, maker: async_sessionmaker[AsyncSession], dialogue: DialogueEngine, hub: StreamHub,
    escalation: Escalation, message_id: str, locale: str,
) -> TurnStored | None:
    """Run Rasa for a stored, pending customer message and store its replies (None when
    there was nothing to run, or another writer stored them)."""
    async with maker() as session:
        message = await _by_public_id(session, message_id)
        conversation = await service.get_conversation(session,
                                                      conversation_id=message.conversation_id)
        answer, reopened = _admit(session, message=message, conversation=conversation)
        await session.commit()
        if reopened:
            publish(hub, conversation.id, State.BOT, {"type": "state", "state": State.BOT})
        if not answer:
            return None
        text, conversation_id, payload = message.text, message.conversation_id, message.data.payload
    return await _run_turn(maker=maker, dialogue=dialogue, hub=hub, escalation=escalation,
                           message_id=message_id, conversation_id=conversation_id, text=text,
                           payload=payload, locale=locale)


async def _run_turn(
    *, maker: async_sessionmaker[AsyncSession], dialogue: DialogueEngine, hub: StreamHub,
    escalation: Escalation, message_id: str, conversation_id: str, text: str,
    payload: str | None, locale: str,
) -> TurnStored | None:
    """Rasa's turn for an admitted customer message, and its replies stored exactly once."""
    started = time.perf_counter()
    # Only a verified button payload may be read as a command (``/intent{...}``); the Parley
    # channel neutralises a leading "/" in anything else (bot/components/parley_channel.py).
    # Rasa forwards no headers: the trace context rides in the metadata to the action server.
    with tracing.span("rasa.handle", kind=tracing.SpanKind.CLIENT,
                      attributes={"parley.conversation_id": conversation_id,
                                  "parley.message_id": message_id}) as call:
        turn = await dialogue.handle(conversation_id, payload or text, message_id=message_id,
                                     metadata={"locale": locale, **tracing.inject(),
                                               **({"payload": True} if payload else {})})
        call.set_attributes({"parley.intent": (turn.intent or {}).get("name") or "",
                             "parley.replayed": turn.replayed})
    elapsed = time.perf_counter() - started
    metrics.TURN_LATENCY.observe(elapsed)

    async with maker() as session:
        # Claim the right to store this turn's replies: exactly one writer wins, even across
        # API processes (a concurrent recovery pass got the same, replayed, replies).
        claimed = cast(CursorResult[Any], await session.execute(
            update(Message).where(Message.id == message_id, Message.status == service.PENDING)
            .values(status=service.DONE).execution_options(synchronize_session=False)))
        if claimed.rowcount != 1:
            await session.rollback()
            return None
        message = await _by_public_id(session, message_id)
        conversation = await service.get_conversation(session, conversation_id=conversation_id)
        history = await _recent_signals(session, conversation_id=conversation_id,
                                        before_seq=message.seq)
        stored = turns.store_turn(session, message=message, turn=turn)
        language = turn.slots.get("language") or conversation.locale
        reason = _handoff_trigger(escalation, turn, text=text, history=history)
        if reason and conversation.state in (State.BOT, State.RESOLVED):
            request_handoff(session, conversation=conversation, reason=reason, actor="bot",
                            priority=escalation.priority(reason))
            notices = [] if reason == "customer_request" else [  # the bot has not said it yet
                HANDOFF_NOTICE.get(language, HANDOFF_NOTICE["en"])]
            if closed := escalation.closed_notice(language):
                notices.append(closed)
            stored += [service.add_reply(session, conversation_id=conversation_id,
                                         reply_to=message.id, role="bot", text=notice,
                                         data=MessageData()) for notice in notices]
            metrics.HANDOFFS.labels(reason=reason).inc()
        elif turns.closes(turn) and conversation.state == State.BOT:
            resolve_by_bot(session, conversation=conversation, reason="closed by the dialogue")
        await session.flush()  # the replies' ids, for the events' keys
        await turns.record_turn(session, message=message, turn=turn, replies=stored,
                           language=language, turn_ms=round(elapsed * 1000, 1))
        state = conversation.state
        await session.commit()
    for reply in stored:
        metrics.MESSAGES.labels(role="bot").inc()
        publish(hub, conversation_id, state,
                {"type": "message", "message": _dump(service.to_public(reply))})
    if reason and state == State.QUEUED:
        publish(hub, conversation_id, state, {"type": "state", "state": state, "reason": reason})
    elif state == State.RESOLVED:
        publish(hub, conversation_id, state, {"type": "state", "state": state, "csat": True})
    return TurnStored(replies=stored, state=state)


HANDOFF_NOTICE = {
    "en": "I'm bringing in a member of our support team to help you. Please stay in this chat.",
    "zh": "正在为您转接人工客服，请稍候，不要离开对话。",
}
AGENTS_TOPIC = "agents"


def publish(hub: StreamHub, conversation_id: str, state: str, event: dict[str, Any]) -> None:
    """To the conversation's subscribers, and to agent consoles once people are involved."""
    hub.publish(conversation_id, event)
    if state != State.BOT or event.get("type") == "state":
        hub.publish(AGENTS_TOPIC, {**event, "conversation_id": conversation_id})


def typing(hub: StreamHub, *, conversation_id: str, role: str,
           name: str | None = None) -> None:
    """Relay a typing indicator: an agent's to the widget, the customer's to the consoles.
    The caller decides who may: the console stream relays an agent's only where the agent may
    reply (``handoff.router``), and both sides at most PARLEY_TYPING_FRAMES_PER_S."""
    event: dict[str, Any] = {"type": "typing", "role": role}
    if name:
        event["name"] = name
    if role == "agent":
        hub.publish(conversation_id, event)
    else:
        hub.publish(AGENTS_TOPIC, {**event, "conversation_id": conversation_id})


def _signals(data: MessageData) -> TurnSignals:
    return TurnSignals(intent=data.intent, abstained=data.abstained)


async def _recent_signals(session: AsyncSession, *, conversation_id: str,
                          before_seq: int) -> list[TurnSignals]:
    stmt = (select(Message.data).where(Message.conversation_id == conversation_id,
                                       Message.role == "customer", Message.seq < before_seq,
                                       Message.status == service.DONE)
            .order_by(Message.seq.desc()).limit(3))
    rows = (await session.execute(stmt)).scalars().all()
    return [_signals(data) for data in reversed(rows)]


def _handoff_trigger(escalation: Escalation, turn: Turn, *, text: str,
                     history: list[TurnSignals]) -> str | None:
    requested = next((str((r.custom or {})["handoff"].get("reason", "customer_request"))
                      for r in turn.replies if (r.custom or {}).get("handoff")), None)
    current = TurnSignals(intent=(turn.intent or {}).get("name"),
                          abstained=any((r.custom or {}).get("abstained") for r in turn.replies))
    reason = escalation.reason(text=text, history=[*history, current], requested=False)
    return requested or reason


async def _offered_title(session: AsyncSession, *, conversation_id: str, payload: str,
                         text: str) -> str:
    """The title of the button with ``payload`` in the bot's latest turn (all the replies to
    the customer message it answered last), preferring one that reads as ``text``; 422
    ``unknown_payload`` when that turn offered no such button."""
    latest = (select(Message.reply_to).where(Message.conversation_id == conversation_id,
                                             Message.role == "bot",
                                             Message.reply_to.is_not(None))
              .order_by(Message.seq.desc()).limit(1).scalar_subquery())
    replies = (await session.execute(select(Message.data).where(
        Message.conversation_id == conversation_id, Message.role == "bot",
        Message.reply_to == latest))).scalars()
    titles = [b.title.strip() for data in replies for b in data.buttons if b.payload == payload]
    if not titles:
        raise Unprocessable("The bot's latest message offers no such button.",
                            code="unknown_payload")
    return text if text in titles else titles[0] or text


async def _by_public_id(session: AsyncSession, message_id: str) -> Message:
    return (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()


async def recover_pending(*, maker: async_sessionmaker[AsyncSession], dialogue: DialogueEngine,
                          hub: StreamHub, escalation: Escalation) -> int:
    """Finish turns a crash left pending (called at start-up). Returns how many were finished."""
    async with maker() as session:
        pending = [(m.id, m.conversation_id) for m in
                   await service.pending_customer_messages(session)]
    finished = 0
    for message_id, conversation_id in pending:
        async with conversation_lock(conversation_id):
            async with maker() as session:
                conversation = await service.get_conversation(session,
                                                              conversation_id=conversation_id)
                locale = conversation.locale
            try:
                with tracing.span("parley.turn", attributes={
                        "parley.conversation_id": conversation_id,
                        "parley.message_id": message_id, "parley.recovered": True}):
                    await process_pending(maker=maker, dialogue=dialogue, hub=hub,
                                          escalation=escalation, message_id=message_id,
                                          locale=locale)
                finished += 1
            except ParleyError as exc:
                logger.warning("could not finish a pending turn yet: %s", exc.code)
                break
    return finished


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)
