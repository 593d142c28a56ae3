"""Agent-side orchestration: change state, store, then tell the customer and the consoles."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversations import service as conversations
from conversations.data import MessageData
from conversations.dialogue import DialogueEngine
from conversations.flows import conversation_lock, publish
from conversations.models import Conversation, Message
from conversations.state import State
from conversations.stream import StreamHub
from core import outbox
from core.config import Settings
from core.db import utcnow
from handoff import service
from handoff.schemas import (
    ConversationDetail,
    NotePublic,
    QueueItem,
    SlaPublic,
    Summary,
)
from handoff.suggestions import suggestions
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import Embedder
from knowledge.protocol import CompanyStore
from staff.models import Agent

CSAT_PROMPT = {
    "en": "Your conversation has been resolved. How did we do? Please rate us from 1 to 5.",
    "zh": "本次对话已结束。请为我们的服务打分（1–5 分）。",
}
HANDBACK_NOTICE = {
    "en": "You're back with our virtual assistant. Ask me anything, or ask for a person again.",
    "zh": "您已回到智能助手，有任何问题都可以继续问我，也可以再次要求转人工。",
}
JOINED_NOTICE = {
    "en": "{name} from our support team has joined the chat.",
    "zh": "客服 {name} 已加入对话。",
}


def queue_item(conversation: Conversation, *, settings: Settings,
               last_message: str | None = None) -> QueueItem:
    sla = service.sla(conversation, first_response_s=settings.sla_first_response_s,
                      resolution_s=settings.sla_resolution_s)
    waiting = ((utcnow() - conversation.queued_at).total_seconds()
               if conversation.queued_at and conversation.state == State.QUEUED else None)
    return QueueItem(id=conversation.id, state=State(conversation.state),
                     locale=conversation.locale,
                     priority=conversation.priority, skill=conversation.skill,
                     handoff_reason=conversation.handoff_reason,
                     queued_at=conversation.queued_at, waiting_s=waiting,
                     agent_id=conversation.agent_id, last_message=last_message,
                     sla=SlaPublic(**sla.to_dict()))


def summarise(messages: list[Message], conversation: Conversation) -> Summary:
    customer = [m.data for m in messages if m.role == "customer"]
    intents = [data.intent for data in customer if data.intent]
    slots = next((data.slots for data in reversed(customer) if data.slots), {})
    entities = [e.model_dump() for data in customer for e in data.entities]
    citations = [c for m in messages if m.role == "bot" for c in m.data.citations]
    visible = {k: v for k, v in slots.items()
               if v not in (None, False, "") and k not in {"requested_slot",
                                                           "session_started_metadata"}}
    return Summary(intents=intents, slots=visible, entities=entities,
                   handoff_reason=conversation.handoff_reason, knowledge_answers=citations)


async def detail(session: AsyncSession, *, conversation: Conversation, settings: Settings,
                 store: CompanyStore, index: DocumentIndex,
                 embedder: Embedder) -> ConversationDetail:
    conversation_id = conversation.id
    messages = await conversations.transcript(session, conversation_id=conversation_id)
    summary = summarise(messages, conversation)
    language = summary.slots.get("language") or conversation.locale
    notes = await service.notes(session, conversation_id=conversation_id)
    last = next((m.text for m in reversed(messages) if m.role == "customer"), None)
    return ConversationDetail(
        conversation=queue_item(conversation, settings=settings, last_message=last),
        messages=[conversations.to_public(m) for m in messages],
        notes=[NotePublic.model_validate(n) for n in notes],
        summary=summary,
        suggestions=await suggestions(store=store, index=index, embedder=embedder,
                                      last_customer_text=last, slots=summary.slots,
                                      language=str(language)),
        csat_score=conversation.csat_score, csat_comment=conversation.csat_comment)


def _system_message(session: AsyncSession, conversation: Conversation,
                    table: dict[str, str], agent: Agent | None = None,
                    **values: Any) -> Message:
    text = table.get(conversation.locale, table["en"]).format(**values)
    data = MessageData(system=True, agent_name=agent.name if agent is not None else None)
    message = Message(conversation_id=conversation.id, role="bot", text=text, status="done",
                      data=data)
    session.add(message)
    return message


async def _announce(hub: StreamHub, conversation: Conversation,
                    messages: list[Message], extra: dict[str, Any] | None = None,
                    agent: Agent | None = None) -> None:
    for message in messages:
        publish(hub, conversation.id, conversation.state,
                {"type": "message", "message": conversations.to_public(message).model_dump(
                    mode="json", exclude_none=True)})
    publish(hub, conversation.id, conversation.state,
            {"type": "state", "state": conversation.state, "agent_id": conversation.agent_id,
             "agent_name": agent.name if agent and conversation.agent_id == agent.id else None,
             **(extra or {})})


async def claim(maker: async_sessionmaker[AsyncSession], hub: StreamHub, *, agent: Agent,
                conversation_id: str | None) -> Conversation | None:
    async with maker() as session:
        if conversation_id is None:
            conversation = await service.claim_next(session, agent_id=agent.id)
            if conversation is None:
                await session.rollback()
                return None
        else:
            conversation = await service.claim(session, conversation_id=conversation_id,
                                               agent_id=agent.id)
        joined = _system_message(session, conversation, JOINED_NOTICE, agent, name=agent.name)
        await session.commit()
    await _announce(hub, conversation, [joined], agent=agent)
    return conversation


async def send_agent_message(maker: async_sessionmaker[AsyncSession], hub: StreamHub, *,
                             agent: Agent, conversation_id: str, text: str) -> Message:
    async with maker() as session:
        conversation = await conversations.get_conversation(session,
                                                            conversation_id=conversation_id)
        first = conversation.first_agent_reply_at is None
        message = service.add_agent_message(session, conversation=conversation, agent=agent,
                                            text=text)
        if first and conversation.queued_at and conversation.first_agent_reply_at:
            await session.flush()  # the message's id, for the event's key
            replied_at, queued_at = conversation.first_agent_reply_at, conversation.queued_at
            await outbox.record(session, kind="agent.first_reply",
                                key=f"agent.first_reply:{message.id}",
                                conversation_id=conversation_id, at=replied_at, payload={
                                    "agent_id": agent.id, "message_id": message.id,
                                    "queued_at": queued_at.isoformat(),
                                    "first_response_s": (replied_at - queued_at).total_seconds()})
        await session.commit()
    publish(hub, conversation_id, conversation.state,
            {"type": "message", "message": conversations.to_public(message).model_dump(
                mode="json", exclude_none=True)})
    return message


async def hand_back(maker: async_sessionmaker[AsyncSession], hub: StreamHub,
                    dialogue: DialogueEngine, *, agent: Agent, conversation_id: str,
                    slots: dict[str, Any]) -> Conversation:
    """Return the conversation to the bot with what the agent learnt set as slots."""
    async with conversation_lock(conversation_id):
        async with maker() as session:
            conversation = await conversations.get_conversation(session,
                                                                conversation_id=conversation_id)
            service.require_holder(conversation, agent)
        # Slots first: if Rasa is unreachable the agent keeps the conversation.
        await dialogue.set_slots(conversation_id, {**slots, "handoff_requested": False})
        async with maker() as session:
            conversation = await conversations.get_conversation(session,
                                                                conversation_id=conversation_id)
            service.hand_back(session, conversation=conversation, agent=agent)
            notice = _system_message(session, conversation, HANDBACK_NOTICE)
            await session.commit()
    await _announce(hub, conversation, [notice])
    return conversation


async def resolve(maker: async_sessionmaker[AsyncSession], hub: StreamHub, *, agent: Agent,
                  conversation_id: str) -> Conversation:
    async with maker() as session:
        conversation = await conversations.get_conversation(session,
                                                            conversation_id=conversation_id)
        service.resolve(session, conversation=conversation, actor=f"agent:{agent.id}",
                        agent=agent)
        prompt = _system_message(session, conversation, CSAT_PROMPT)
        await session.commit()
    await _announce(hub, conversation, [prompt], {"csat": True})
    return conversation


async def transfer(maker: async_sessionmaker[AsyncSession], hub: StreamHub, *, agent: Agent,
                   conversation_id: str, to_agent_id: int | None,
                   to_skill: str | None) -> Conversation:
    async with maker() as session:
        conversation = await conversations.get_conversation(session,
                                                            conversation_id=conversation_id)
        await service.transfer(session, conversation=conversation, agent=agent,
                               to_agent_id=to_agent_id, to_skill=to_skill)
        await session.commit()
    await _announce(hub, conversation, [], {"transferred_by": agent.id})
    return conversation
