"""HTTP layer of the agent console API (every route needs a staff session)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations import service as conversations
from conversations.deps import DialogueDep, HubDep
from conversations.flows import AGENTS_TOPIC, typing
from conversations.models import Conversation, Message
from conversations.schemas import MessagePublic
from conversations.stream import StreamHub, pump, refuse
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

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/agent", tags=["agent console"])
SESSION_RECHECK_S = 10.0
READER_CACHE_S = 2.0  # how long a console's right to see a conversation's events is kept
HOLDER_CACHE_S = 2.0  # how long a console's right to show typing in a conversation is kept
TYPING_BACKLOG = 16  # typing frames waiting for their decision, per console
CONVERSATION_ID_CHARS = 32  # conversations.models.Conversation.id
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
async def stream(websocket: WebSocket, maker: MakerDep, hub: HubDep,
                 settings: SettingsDep) -> None:
    """Live console events: queue changes, messages, typing, notes, presence.

    The session token comes as ``?token=``; the console sends ``{"type": "typing",
    "conversation_id": ...}`` while an agent types, and the customer's widget hears it when
    the agent may reply there (``_TypingRelay``). The session is checked again every
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

    relay = _TypingRelay(agent, maker, hub, per_s=settings.typing_frames_per_s)
    readable = None if agent.role == "admin" else _readable_by(agent, maker)

    async def allow(event: dict[str, Any]) -> bool:
        relay.observe(event)
        return readable is None or await readable(event)

    try:
        await pump(websocket, hub, AGENTS_TOPIC, on_frame=relay.on_frame,
                   hello={"type": "hello", "agent_id": agent.id},
                   check=check, check_every_s=SESSION_RECHECK_S, allow=allow)
    finally:
        await relay.aclose()


@dataclass
class _Typing:
    """What a console knows about one conversation it typed in."""

    decided_at: float = -math.inf
    may_type: bool = False
    sent_at: float = -math.inf


class _TypingRelay:
    """An agent's typing frames, relayed to a customer's widget only where the agent may reply
    now: the conversation is with an agent and this one holds it, or this one is an admin
    (``service.require_holder``, the rule the reply route applies), so a widget never shows
    typing for a message the server would refuse. At most ``per_s`` frames a second per
    conversation, like the widget's own (PARLEY_TYPING_FRAMES_PER_S).

    Frames are handled in order by one task per console, behind a short queue (a frame that
    finds it full is dropped: typing is a hint), so a console that floods made-up ids costs one
    primary-key lookup at a time. Decisions are kept ``HOLDER_CACHE_S`` per conversation and
    dropped when a state event for it goes by (claim, transfer, resolve, hand-back)."""

    def __init__(self, agent: Agent, maker: Any, hub: StreamHub, *, per_s: float) -> None:
        self.agent, self.maker, self.hub = agent, maker, hub
        self.interval_s = 1 / per_s
        self.frames: asyncio.Queue[str] = asyncio.Queue(maxsize=TYPING_BACKLOG)
        self.known: dict[str, _Typing] = {}
        self.changes = 0  # state events seen: a lookup that straddles one is not kept
        self.worker: asyncio.Task[None] | None = None

    def on_frame(self, frame: dict[str, Any]) -> None:
        conversation_id = frame.get("conversation_id")
        if frame.get("type") != "typing" or not isinstance(conversation_id, str) \
                or not 0 < len(conversation_id) <= CONVERSATION_ID_CHARS:
            return
        if self.worker is None:
            self.worker = asyncio.create_task(self._work())
        with contextlib.suppress(asyncio.QueueFull):
            self.frames.put_nowait(conversation_id)

    def observe(self, event: dict[str, Any]) -> None:
        """Each console event goes by here: a state change drops the decision about it."""
        conversation_id = event.get("conversation_id")
        if event.get("type") == "state" and isinstance(conversation_id, str):
            self.changes += 1
            if (known := self.known.get(conversation_id)) is not None:
                known.decided_at = -math.inf

    async def aclose(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker

    async def _work(self) -> None:
        while True:
            conversation_id = await self.frames.get()
            known = self.known.setdefault(conversation_id, _Typing())
            if time.monotonic() - known.sent_at < self.interval_s:
                continue
            if await self._may_type(conversation_id, known):
                known.sent_at = time.monotonic()
                typing(self.hub, conversation_id=conversation_id, role="agent",
                       name=self.agent.name)
            self._forget_old()

    async def _may_type(self, conversation_id: str, known: _Typing) -> bool:
        now, changes = time.monotonic(), self.changes
        if now - known.decided_at < HOLDER_CACHE_S:
            return known.may_type
        try:
            async with self.maker() as session:
                conversation = await session.get(Conversation, conversation_id)
        except Exception:
            logger.exception("typing: could not look the conversation up")
            return False
        try:
            if conversation is None:
                raise Forbidden("No such conversation.", code="not_your_conversation")
            service.require_holder(conversation, self.agent)
            may_type = True
        except Forbidden:
            may_type = False
        if changes == self.changes:  # no state change went by while it was looked up
            known.decided_at, known.may_type = now, may_type
        return may_type

    def _forget_old(self) -> None:
        """Keep the map small when a console names many conversations."""
        if len(self.known) > TYPING_BACKLOG * 8:
            now, keep_s = time.monotonic(), max(HOLDER_CACHE_S, self.interval_s)
            for key in [k for k, v in self.known.items()
                        if now - max(v.decided_at, v.sent_at) >= keep_s]:
                del self.known[key]


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
