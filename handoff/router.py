"""HTTP layer of the agent console API (every route needs a staff session)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations import service as conversations
from conversations.deps import DialogueDep, HubDep
from conversations.flows import AGENTS_TOPIC, typing
from conversations.models import Conversation, Message
from conversations.schemas import MessagePublic
from conversations.stream import pump, refuse
from core.deps import MakerDep, SessionDep, SettingsDep
from core.errors import Forbidden, ParleyError
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
from staff.deps import CurrentAgent, require_console
from staff.models import Agent
from staff.schemas import AgentPublic, PresenceUpdate

router = APIRouter(prefix="/api/v1/agent", tags=["agent console"])
SESSION_RECHECK_S = 10.0
READER_CACHE_S = 2.0  # how long a console's right to see a conversation's events is kept
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "`conversation_not_found`"}}
READ_RULE = ("`not_your_conversation`: an agent reads what they hold, what waits in a queue "
             "they could claim (language, skill) and what they handled before; admins read all")


async def _last_customer_texts(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = (await session.execute(
        select(Message.conversation_id, Message.text).where(
            Message.conversation_id.in_(ids), Message.role == "customer")
        .order_by(Message.seq))).all()
    return {conversation_id: text for conversation_id, text in rows}


@router.get("/queue", response_model=list[QueueItem])
async def queue(agent: CurrentAgent, session: SessionDep,
                settings: SettingsDep) -> list[QueueItem]:
    """Conversations waiting for a person that this agent could take (admins: all), highest
    priority and longest wait first."""
    waiting = await service.queue(session, agent=agent)
    last = await _last_customer_texts(session, [c.id for c in waiting])
    return [flows.queue_item(c, settings=settings, last_message=last.get(c.id)) for c in waiting]


@router.get("/conversations", response_model=list[QueueItem])
async def my_conversations(agent: CurrentAgent, session: SessionDep, settings: SettingsDep,
                           state: Literal["with_agent", "resolved"] = "with_agent",
                           limit: int = Query(default=50, ge=1, le=200)) -> list[QueueItem]:
    """The conversations this agent holds (admins: everyone's); ``state=resolved`` lists the
    ones people resolved that this agent handled (admins: all), newest first (their CSAT
    included)."""
    stmt = select(Conversation).where(Conversation.state == state)
    if state == "resolved":
        stmt = stmt.where(Conversation.assigned_at.is_not(None)).order_by(
            Conversation.resolved_at.desc())
    else:
        stmt = stmt.order_by(Conversation.assigned_at)
    if agent.role != "admin" and state == "with_agent":
        stmt = stmt.where(Conversation.agent_id == agent.id)
    elif agent.role != "admin":
        stmt = stmt.where(Conversation.id.in_(service.handled_by(agent.id)))
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
             responses={**NOT_FOUND,
                        403: {"description": "`not_your_queue`: another language or skill"},
                        409: {"description": "`already_assigned`, `agent_at_capacity`, "
                                             "`agent_not_online`"}})
async def claim(conversation_id: str, agent: CurrentAgent, maker: MakerDep, hub: HubDep,
                settings: SettingsDep) -> QueueItem:
    conversation = await flows.claim(maker, hub, agent=agent, conversation_id=conversation_id)
    assert conversation is not None
    return flows.queue_item(conversation, settings=settings)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail,
            responses={**NOT_FOUND, 403: {"description": READ_RULE}})
async def detail(conversation_id: str, agent: CurrentAgent, session: SessionDep,
                 settings: SettingsDep, request: Request) -> ConversationDetail:
    conversation = await conversations.get_conversation(session, conversation_id=conversation_id)
    await service.require_reader(session, conversation=conversation, agent=agent)
    return await flows.detail(session, conversation=conversation, settings=settings,
                              store=request.app.state.company_store,
                              index=request.app.state.document_index,
                              embedder=request.app.state.embedder)


@router.post("/conversations/{conversation_id}/messages", response_model=MessagePublic,
             response_model_exclude_none=True, status_code=status.HTTP_201_CREATED,
             responses=NOT_FOUND)
async def send(conversation_id: str, body: AgentMessageCreate, agent: CurrentAgent,
               maker: MakerDep, hub: HubDep) -> MessagePublic:
    message = await flows.send_agent_message(maker, hub, agent=agent,
                                             conversation_id=conversation_id,
                                             text=conversations.validate_text(
                                                 body.text, max_chars=4000))
    return conversations.to_public(message)


@router.post("/conversations/{conversation_id}/notes", response_model=NotePublic,
             status_code=status.HTTP_201_CREATED,
             responses={**NOT_FOUND,
                        403: {"description": "`not_your_conversation`: notes go on the "
                                             "conversation you hold (admins: any)"}})
async def add_note(conversation_id: str, body: NoteCreate, agent: CurrentAgent,
                   session: SessionDep, hub: HubDep) -> NotePublic:
    conversation = await conversations.get_conversation(session, conversation_id=conversation_id)
    note = service.add_note(session, conversation=conversation, agent=agent,
                            text=body.text.strip())
    await session.commit()  # stored before the consoles hear of it
    public = NotePublic.model_validate(note)
    hub.publish(AGENTS_TOPIC, {"type": "note", "conversation_id": conversation_id,
                               "note": public.model_dump(mode="json")})
    return public


@router.post("/conversations/{conversation_id}/transfer", response_model=QueueItem,
             responses=NOT_FOUND)
async def transfer(conversation_id: str, body: TransferRequest, agent: CurrentAgent,
                   maker: MakerDep, hub: HubDep, settings: SettingsDep) -> QueueItem:
    conversation = await flows.transfer(maker, hub, agent=agent,
                                        conversation_id=conversation_id,
                                        to_agent_id=body.agent_id, to_skill=body.skill)
    return flows.queue_item(conversation, settings=settings)


@router.post("/conversations/{conversation_id}/resolve", response_model=QueueItem,
             responses=NOT_FOUND)
async def resolve(conversation_id: str, agent: CurrentAgent, maker: MakerDep, hub: HubDep,
                  settings: SettingsDep) -> QueueItem:
    conversation = await flows.resolve(maker, hub, agent=agent, conversation_id=conversation_id)
    return flows.queue_item(conversation, settings=settings)


@router.post("/conversations/{conversation_id}/handback", response_model=QueueItem,
             responses=NOT_FOUND)
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
    "conversation_id": ...}`` while an agent types. The session is checked again every
    ``SESSION_RECHECK_S``: a logged-out or expired session stops receiving customer data.
    """
    token = websocket.query_params.get("token")

    async def check() -> None:
        # Short sessions of its own: one held for the socket's life would hold a transaction.
        async with maker() as session:
            await auth_service.agent_for_token(session, token=token)

    try:
        async with maker() as session:
            agent = require_console(await auth_service.agent_for_token(session, token=token))
    except ParleyError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()

    def on_frame(frame: dict[str, Any]) -> None:
        conversation_id = frame.get("conversation_id")
        if frame.get("type") == "typing" and isinstance(conversation_id, str):
            typing(hub, conversation_id=conversation_id, role="agent", name=agent.name)

    await pump(websocket, hub, AGENTS_TOPIC, on_frame=on_frame,
               hello={"type": "hello", "agent_id": agent.id},
               check=check, check_every_s=SESSION_RECHECK_S,
               allow=None if agent.role == "admin" else _readable_by(agent, maker))


def _readable_by(agent: Agent, maker: Any) -> Callable[[dict[str, Any]], Awaitable[bool]]:
    """Which console events an agent sees: what the conversation REST routes let them read
    (``service.require_reader``: held, claimable from their queue, handled before). Queue and
    presence changes carry no customer text and reach every console (a claimed chat must leave
    the others' queues); messages, typing, notes and ratings only reach its readers. Decisions
    are kept ``READER_CACHE_S`` per conversation, and dropped when its state changes."""
    decided: dict[str, tuple[float, bool]] = {}

    async def allow(event: dict[str, Any]) -> bool:
        conversation_id = event.get("conversation_id")
        if not isinstance(conversation_id, str):
            return True
        if event.get("type") == "state":
            decided.pop(conversation_id, None)
            return True
        now = time.monotonic()
        cached = decided.get(conversation_id)
        if cached is not None and now - cached[0] < READER_CACHE_S:
            return cached[1]
        async with maker() as session:
            conversation = await session.get(Conversation, conversation_id)
            try:
                if conversation is None:
                    raise Forbidden("No such conversation.", code="not_your_conversation")
                await service.require_reader(session, conversation=conversation, agent=agent)
                readable = True
            except Forbidden:
                readable = False
        decided[conversation_id] = (now, readable)
        return readable

    return allow


@router.put("/presence", response_model=AgentPublic)
async def set_presence(body: PresenceUpdate, agent: CurrentAgent, session: SessionDep,
                       hub: HubDep) -> Agent:
    record = await session.get(Agent, agent.id)
    assert record is not None
    record.presence = body.presence
    await session.commit()  # stored before the consoles hear of it
    hub.publish(AGENTS_TOPIC, {"type": "presence", "agent_id": agent.id,
                               "presence": body.presence})
    return record
