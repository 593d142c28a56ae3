"""HTTP layer of the agent console API (every route needs a staff session)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect, status
from sqlalchemy import select

from conversations import service as conversations
from conversations.deps import DialogueDep, HubDep
from conversations.flows import AGENTS_TOPIC, typing
from conversations.models import Conversation, Message
from conversations.schemas import MessagePublic
from core.deps import MakerDep, SettingsDep
from core.errors import ParleyError
from handoff import flows, service
from handoff.schemas import (
    AgentMessageCreate,
    ConversationDetail,
    HandBackRequest,
    NoteCreate,
    NotePublic,
    QueueItem,
    TransferRequest,
)
from staff import service as auth_service
from staff.deps import CurrentAgent
from staff.models import Agent
from staff.schemas import AgentPublic, PresenceUpdate

router = APIRouter(prefix="/api/v1/agent", tags=["agent console"])
SESSION_RECHECK_S = 10.0


async def _last_customer_texts(session, ids: list[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    if not ids:
        return {}
    rows = (await session.execute(
        select(Message.conversation_id, Message.text).where(
            Message.conversation_id.in_(ids), Message.role == "customer")
        .order_by(Message.seq))).all()
    return {conversation_id: text for conversation_id, text in rows}


@router.get("/queue", response_model=list[QueueItem])
async def queue(agent: CurrentAgent, maker: MakerDep, settings: SettingsDep) -> list[QueueItem]:
    """Conversations waiting for a person, highest priority and longest wait first."""
    async with maker() as session:
        waiting = await service.queue(session)
        last = await _last_customer_texts(session, [c.id for c in waiting])
    return [flows.queue_item(c, settings=settings, last_message=last.get(c.id)) for c in waiting]


@router.get("/conversations", response_model=list[QueueItem])
async def my_conversations(agent: CurrentAgent, maker: MakerDep, settings: SettingsDep,
                           state: Literal["with_agent", "resolved"] = "with_agent",
                           limit: int = Query(default=50, ge=1, le=200)) -> list[QueueItem]:
    """The conversations this agent holds (admins: everyone's); ``state=resolved`` lists the
    ones people resolved, newest first (their CSAT included)."""
    async with maker() as session:
        stmt = select(Conversation).where(Conversation.state == state)
        if state == "resolved":
            stmt = stmt.where(Conversation.assigned_at.is_not(None)).order_by(
                Conversation.resolved_at.desc())
        else:
            stmt = stmt.order_by(Conversation.assigned_at)
        if agent.role != "admin" and state == "with_agent":
            stmt = stmt.where(Conversation.agent_id == agent.id)
        held = list((await session.execute(stmt.limit(limit))).scalars())
        last = await _last_customer_texts(session, [c.id for c in held])
    return [flows.queue_item(c, settings=settings, last_message=last.get(c.id)) for c in held]


@router.post("/queue/next", response_model=QueueItem | None,
             responses={409: {"description": "`agent_not_online`, `agent_at_capacity`"}})
async def take_next(agent: CurrentAgent, maker: MakerDep, hub: HubDep,
                    settings: SettingsDep) -> QueueItem | None:
    conversation = await flows.claim(maker, hub, agent=agent, conversation_id=None)
    return flows.queue_item(conversation, settings=settings) if conversation else None


@router.post("/conversations/{conversation_id}/claim", response_model=QueueItem,
             responses={409: {"description": "`already_assigned`, `agent_at_capacity`, "
                                             "`agent_not_online`"}})
async def claim(conversation_id: str, agent: CurrentAgent, maker: MakerDep, hub: HubDep,
                settings: SettingsDep) -> QueueItem:
    conversation = await flows.claim(maker, hub, agent=agent, conversation_id=conversation_id)
    assert conversation is not None
    return flows.queue_item(conversation, settings=settings)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
async def detail(conversation_id: str, agent: CurrentAgent, maker: MakerDep,
                 settings: SettingsDep, request: Request) -> ConversationDetail:
    async with maker() as session:
        return await flows.detail(session, conversation_id=conversation_id, settings=settings,
                                  store=request.app.state.company_store,
                                  index=request.app.state.document_index,
                                  embedder=request.app.state.embedder)


@router.post("/conversations/{conversation_id}/messages", response_model=MessagePublic,
             response_model_exclude_none=True, status_code=status.HTTP_201_CREATED)
async def send(conversation_id: str, body: AgentMessageCreate, agent: CurrentAgent,
               maker: MakerDep, hub: HubDep) -> MessagePublic:
    message = await flows.send_agent_message(maker, hub, agent=agent,
                                             conversation_id=conversation_id,
                                             text=conversations.validate_text(
                                                 body.text, max_chars=4000))
    return conversations.to_public(message)


@router.post("/conversations/{conversation_id}/notes", response_model=NotePublic,
             status_code=status.HTTP_201_CREATED)
async def add_note(conversation_id: str, body: NoteCreate, agent: CurrentAgent,
                   maker: MakerDep, hub: HubDep) -> NotePublic:
    async with maker() as session:
        conversation = await conversations.get_conversation(session,
                                                            conversation_id=conversation_id)
        note = service.add_note(session, conversation=conversation, agent=agent,
                                text=body.text.strip())
        await session.commit()
        public = NotePublic.model_validate(note)
    hub.publish(AGENTS_TOPIC, {"type": "note", "conversation_id": conversation_id,
                               "note": public.model_dump(mode="json")})
    return public


@router.post("/conversations/{conversation_id}/transfer", response_model=QueueItem)
async def transfer(conversation_id: str, body: TransferRequest, agent: CurrentAgent,
                   maker: MakerDep, hub: HubDep, settings: SettingsDep) -> QueueItem:
    conversation = await flows.transfer(maker, hub, agent=agent,
                                        conversation_id=conversation_id,
                                        to_agent_id=body.agent_id, to_skill=body.skill)
    return flows.queue_item(conversation, settings=settings)


@router.post("/conversations/{conversation_id}/resolve", response_model=QueueItem)
async def resolve(conversation_id: str, agent: CurrentAgent, maker: MakerDep, hub: HubDep,
                  settings: SettingsDep) -> QueueItem:
    conversation = await flows.resolve(maker, hub, agent=agent, conversation_id=conversation_id)
    return flows.queue_item(conversation, settings=settings)


@router.post("/conversations/{conversation_id}/handback", response_model=QueueItem)
async def hand_back(conversation_id: str, body: HandBackRequest, agent: CurrentAgent,
                    maker: MakerDep, hub: HubDep, dialogue: DialogueDep,
                    settings: SettingsDep) -> QueueItem:
    conversation = await flows.hand_back(maker, hub, dialogue, agent=agent,
                                         conversation_id=conversation_id, slots=body.slots)
    return flows.queue_item(conversation, settings=settings)


@router.websocket("/stream")
async def stream(websocket: WebSocket, maker: MakerDep, hub: HubDep) -> None:
    """Live console events: queue changes, messages, typing, notes, presence.

    The session token comes as ``?token=``; the console sends ``{"type": "typing",
    "conversation_id": ...}`` while an agent types.
    """
    try:
        async with maker() as session:
            agent = await auth_service.agent_for_token(
                session, token=websocket.query_params.get("token"))
    except ParleyError as exc:
        # Accept first: a close before the handshake reaches browsers as a bare 1006.
        await websocket.accept()
        await websocket.close(code=4000 + exc.status_code, reason=exc.code)
        return
    await websocket.accept()
    queue_ = hub.subscribe(AGENTS_TOPIC)

    async def receive() -> None:
        while True:
            message = await websocket.receive_json()
            if message.get("type") == "typing" and isinstance(message.get("conversation_id"),
                                                                str):
                typing(hub, conversation_id=message["conversation_id"], role="agent",
                             name=agent.name)

    receiver = asyncio.create_task(receive())
    token = websocket.query_params.get("token")
    checked = time.monotonic()
    try:
        await websocket.send_json({"type": "hello", "agent_id": agent.id})
        while not receiver.done():
            getter = asyncio.create_task(queue_.get())
            done, _ = await asyncio.wait({getter, receiver}, timeout=SESSION_RECHECK_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            if time.monotonic() - checked >= SESSION_RECHECK_S:
                # A logged-out or expired session stops receiving customer data.
                try:
                    async with maker() as session:
                        await auth_service.agent_for_token(session, token=token)
                except ParleyError as exc:
                    getter.cancel()
                    await websocket.close(code=4000 + exc.status_code, reason=exc.code)
                    return
                checked = time.monotonic()
            if getter in done:
                await websocket.send_json(getter.result())
            else:
                getter.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(AGENTS_TOPIC, queue_)
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver


@router.put("/presence", response_model=AgentPublic)
async def set_presence(body: PresenceUpdate, agent: CurrentAgent, maker: MakerDep,
                       hub: HubDep) -> Agent:
    async with maker() as session:
        record = await session.get(Agent, agent.id)
        assert record is not None
        record.presence = body.presence
        await session.commit()
    hub.publish(AGENTS_TOPIC, {"type": "presence", "agent_id": agent.id,
                               "presence": body.presence})
    return record
