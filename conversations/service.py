"""Storage of conversations and messages (keyword-only functions; callers commit).

Every stored conversation and message also writes an outbox event (``core.outbox``) in the
same flush, from the row's own insert: ``conversation.opened`` and ``message``, keyed by the
row's id, so no code path that stores one can forget it and a retry records nothing new.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.data import MessageData
from conversations.models import Conversation, Message, Role
from conversations.schemas import MessagePublic
from core import outbox
from core.db import utcnow
from core.errors import NotFound, Unprocessable

PENDING, DONE = "pending", "done"


def validate_text(text: str, *, max_chars: int) -> str:
    cleaned = text.replace("\x00", "").strip()
    if not cleaned:
        raise Unprocessable("The message text is empty.", code="text_empty")
    if len(cleaned) > max_chars:
        raise Unprocessable(f"The message is longer than {max_chars} characters.",
                            code="text_too_long", details={"max_chars": max_chars})
    return cleaned


async def create_conversation(session: AsyncSession, *, locale: str) -> Conversation:
    conversation = Conversation(locale=locale, state="bot")
    session.add(conversation)
    await session.flush()
    return conversation


async def get_conversation(session: AsyncSession, *, conversation_id: str,
                           for_update: bool = False) -> Conversation:
    stmt = select(Conversation).where(Conversation.id == conversation_id)
    if for_update:
        stmt = stmt.with_for_update()
    conversation = (await session.execute(stmt)).scalar_one_or_none()
    if conversation is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation


async def find_customer_message(session: AsyncSession, *, conversation_id: str,
                                client_message_id: str) -> Message | None:
    stmt = select(Message).where(Message.conversation_id == conversation_id,
                                 Message.client_message_id == client_message_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def replies_to(session: AsyncSession, *, message_id: str) -> list[Message]:
    stmt = select(Message).where(Message.reply_to == message_id).order_by(Message.seq)
    return list((await session.execute(stmt)).scalars())


async def transcript(session: AsyncSession, *, conversation_id: str) -> list[Message]:
    stmt = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
    return list((await session.execute(stmt)).scalars())


async def pending_customer_messages(session: AsyncSession, *, limit: int = 500) -> list[Message]:
    stmt = (select(Message).where(Message.role == "customer", Message.status == PENDING)
            .order_by(Message.seq).limit(limit))
    return list((await session.execute(stmt)).scalars())


def add_reply(session: AsyncSession, *, conversation_id: str, reply_to: str, role: Role,
              text: str, data: MessageData) -> Message:
    message = Message(conversation_id=conversation_id, role=role, text=text, reply_to=reply_to,
                      status=DONE, data=data)
    session.add(message)
    return message


def to_public(message: Message) -> MessagePublic:
    data = message.data
    return MessagePublic(
        id=message.id, role=message.role, text=message.text, created_at=message.created_at,
        buttons=data.buttons or None, citations=data.citations or None,
        client_message_id=message.client_message_id,
        author=data.agent_name,
        system=True if data.system else None,
    )


# ---------------------------------------------------------------- outbox events

@event.listens_for(Conversation, "after_insert")
def _conversation_opened(_mapper: Any, connection: Connection, target: Conversation) -> None:
    outbox.record_on(connection, kind="conversation.opened", key=f"opened:{target.id}",
                     conversation_id=target.id, at=target.created_at or utcnow(),
                     language=target.locale)


@event.listens_for(Message, "after_insert")
def _message_stored(_mapper: Any, connection: Connection, target: Message) -> None:
    data = target.data if isinstance(target.data, MessageData) else MessageData()
    outbox.record_on(connection, kind="message", key=f"message:{target.id}",
                     conversation_id=target.conversation_id, at=target.created_at or utcnow(),
                     payload={"message_id": target.id, "role": target.role,
                              "system": data.system, "agent_id": data.agent_id})
