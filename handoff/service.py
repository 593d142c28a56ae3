"""Who holds a conversation: routing, claiming, transfer, resolution, notes, CSAT and SLA,
built on the state machine in ``conversations.state``.

Every transition is audited (who, when, why). Claiming a queued conversation is one
conditional UPDATE (``... WHERE state = 'queued'``), so two agents can never take the same
chat; the agent's row is locked first so an agent never exceeds their concurrent-chat limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.data import MessageData
from conversations.models import Conversation, Message, StateTransition
from conversations.state import State, transition
from core import outbox
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound
from handoff.models import Note
from staff.models import Agent

# ---------------------------------------------------------------- routing

def _eligible(agent: Agent) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Conversation.state == State.QUEUED]
    if agent.languages:
        conditions.append(Conversation.locale.in_(agent.languages))
    skill_ok: ColumnElement[bool] = Conversation.skill.is_(None)
    if agent.skills:
        skill_ok = skill_ok | Conversation.skill.in_(agent.skills)
    conditions.append(skill_ok)
    return conditions


def could_claim(conversation: Conversation, agent: Agent) -> bool:
    """The language and skill routing of ``_eligible``, for one conversation."""
    if agent.languages and conversation.locale not in agent.languages:
        return False
    return conversation.skill is None or conversation.skill in (agent.skills or [])


async def _lock_agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = (await session.execute(select(Agent).where(Agent.id == agent_id).with_for_update())
             ).scalar_one_or_none()
    if agent is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return agent


async def active_count(session: AsyncSession, *, agent_id: int) -> int:
    return (await session.execute(select(func.count()).select_from(Conversation).where(
        Conversation.agent_id == agent_id, Conversation.state == State.WITH_AGENT))).scalar_one()


async def claim(session: AsyncSession, *, conversation_id: str, agent_id: int,
                actor: str | None = None) -> Conversation:
    """Assign a queued conversation to an agent, atomically (caller commits)."""
    agent = await _lock_agent(session, agent_id)
    if agent.presence != "online":
        raise Conflict("Set yourself online to take conversations.", code="agent_not_online")
    if await active_count(session, agent_id=agent.id) >= agent.max_concurrent:
        raise Conflict("You are at your limit of concurrent conversations.",
                       code="agent_at_capacity")
    now = utcnow()
    # An agent takes only what routing would give them (language, skill); an admin anything.
    routing = [] if agent.role == "admin" else _eligible(agent)
    result = cast(CursorResult[Any], await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.state == State.QUEUED, *routing)
        .values(state=State.WITH_AGENT, agent_id=agent.id, assigned_at=now, updated_at=now)
        .execution_options(synchronize_session=False)))
    if result.rowcount != 1:
        exists = await session.get(Conversation, conversation_id)
        if exists is None:
            raise NotFound("No such conversation.", code="conversation_not_found")
        if exists.state == State.QUEUED:
            raise Forbidden("This conversation waits for another language or skill.",
                            code="not_your_queue")
        raise Conflict("This conversation is no longer waiting (another agent took it).",
                       code="already_assigned")
    session.add(StateTransition(conversation_id=conversation_id, from_state=State.QUEUED,
                                to_state=State.WITH_AGENT, actor=actor or f"agent:{agent.id}",
                                reason="claimed"))
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    await session.refresh(conversation)
    return conversation


async def claim_next(session: AsyncSession, *, agent_id: int) -> Conversation | None:
    """The highest-priority, longest-waiting conversation this agent may take, or None."""
    agent = await session.get(Agent, agent_id)
    assert agent is not None
    candidates = (await session.execute(
        select(Conversation.id).where(*_eligible(agent))
        .order_by(Conversation.priority.desc(), Conversation.queued_at.asc()).limit(25)
    )).scalars().all()
    for conversation_id in candidates:
        try:
            async with session.begin_nested():
                return await claim(session, conversation_id=conversation_id, agent_id=agent_id)
        except Conflict as exc:
            if exc.code != "already_assigned":
                raise
    return None


async def queue(session: AsyncSession, *, agent: Agent | None = None) -> list[Conversation]:
    """Waiting conversations; for an agent (not an admin) only those they could claim."""
    conditions = ([Conversation.state == State.QUEUED] if agent is None or agent.role == "admin"
                  else _eligible(agent))
    return list((await session.execute(
        select(Conversation).where(*conditions)
        .order_by(Conversation.priority.desc(), Conversation.queued_at.asc()))).scalars())


async def queue_position(session: AsyncSession, *, conversation: Conversation) -> int | None:
    if conversation.state != State.QUEUED or conversation.queued_at is None:
        return None
    ahead = (await session.execute(select(func.count()).select_from(Conversation).where(
        Conversation.state == State.QUEUED,
        (Conversation.priority > conversation.priority)
        | ((Conversation.priority == conversation.priority)
           & (Conversation.queued_at < conversation.queued_at))))).scalar_one()
    return int(ahead) + 1


async def average_wait_s(session: AsyncSession, *, default: float = 60.0) -> float:
    """Mean queued→assigned time over the last 50 assignments."""
    rows = (await session.execute(
        select(Conversation.queued_at, Conversation.assigned_at)
        .where(Conversation.assigned_at.is_not(None), Conversation.queued_at.is_not(None))
        .order_by(Conversation.assigned_at.desc()).limit(50))).all()
    waits = [(a - q).total_seconds() for q, a in rows if a and q and a >= q]
    return sum(waits) / len(waits) if waits else default


async def online_agents(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(Agent).where(
        Agent.presence == "online"))).scalar_one()


# ---------------------------------------------------------------- who may read and write

def handled_by(agent_id: int) -> Select[str]:
    """Ids of the conversations an agent took part in, as the audit trail shows: they claimed,
    transferred, handed back or resolved it, or it was transferred to them."""
    actor = f"agent:{agent_id}"
    return select(StateTransition.conversation_id).where(
        (StateTransition.actor == actor) | (StateTransition.reason == f"transfer to {actor}"))


async def require_reader(session: AsyncSession, *, conversation: Conversation,
                         agent: Agent) -> None:
    """An admin reads everything; an agent what they hold, what waits in a queue they could
    claim, and what they handled before. 403 ``not_your_conversation`` otherwise."""
    if agent.role == "admin" or (conversation.state == State.WITH_AGENT
                                 and conversation.agent_id == agent.id):
        return
    if conversation.state == State.QUEUED and could_claim(conversation, agent):
        return
    handled = await session.execute(
        handled_by(agent.id).where(StateTransition.conversation_id == conversation.id).limit(1))
    if handled.first() is None:
        raise Forbidden("You may not read this conversation.", code="not_your_conversation")


def require_note_writer(conversation: Conversation, agent: Agent) -> None:
    """Notes: an admin anywhere, an agent on the conversation they hold."""
    if agent.role != "admin" and (conversation.state != State.WITH_AGENT
                                  or conversation.agent_id != agent.id):
        raise Forbidden("You do not hold this conversation.", code="not_your_conversation")


# ---------------------------------------------------------------- agent work

def require_holder(conversation: Conversation, agent: Agent) -> None:
    if conversation.state != State.WITH_AGENT or conversation.agent_id != agent.id:
        if agent.role == "admin" and conversation.state == State.WITH_AGENT:
            return
        raise Forbidden("You do not hold this conversation.", code="not_your_conversation")


def add_agent_message(session: AsyncSession, *, conversation: Conversation, agent: Agent,
                      text: str) -> Message:
    require_holder(conversation, agent)
    if conversation.first_agent_reply_at is None:
        conversation.first_agent_reply_at = utcnow()
    message = Message(conversation_id=conversation.id, role="agent", text=text, status="done",
                      data=MessageData(agent_id=agent.id, agent_name=agent.name))
    session.add(message)
    return message


def add_note(session: AsyncSession, *, conversation: Conversation, agent: Agent,
             text: str) -> Note:
    require_note_writer(conversation, agent)
    note = Note(conversation_id=conversation.id, agent_id=agent.id, text=text)
    session.add(note)
    return note


async def notes(session: AsyncSession, *, conversation_id: str) -> list[Note]:
    return list((await session.execute(select(Note).where(Note.conversation_id == conversation_id)
                                       .order_by(Note.id))).scalars())


async def transfer(session: AsyncSession, *, conversation: Conversation, agent: Agent,
                   to_agent_id: int | None, to_skill: str | None) -> None:
    require_holder(conversation, agent)
    if to_agent_id is not None:
        target = await _lock_agent(session, to_agent_id)
        if await active_count(session, agent_id=target.id) >= target.max_concurrent:
            raise Conflict("That agent is at their limit of concurrent conversations.",
                           code="agent_at_capacity")
        session.add(StateTransition(conversation_id=conversation.id, from_state=State.WITH_AGENT,
                                    to_state=State.WITH_AGENT, actor=f"agent:{agent.id}",
                                    reason=f"transfer to agent:{target.id}"))
        conversation.agent_id = target.id
        conversation.assigned_at = utcnow()
        return
    transition(session, conversation=conversation, to=State.QUEUED, actor=f"agent:{agent.id}",
               reason=f"transfer to skill:{to_skill or 'any'}")
    conversation.agent_id = None
    conversation.skill = to_skill
    conversation.queued_at = utcnow()


def hand_back(session: AsyncSession, *, conversation: Conversation, agent: Agent) -> None:
    require_holder(conversation, agent)
    transition(session, conversation=conversation, to=State.BOT, actor=f"agent:{agent.id}",
               reason="hand back to bot")
    conversation.agent_id = None


def resolve(session: AsyncSession, *, conversation: Conversation, actor: str,
            agent: Agent | None = None) -> None:
    if agent is not None:
        require_holder(conversation, agent)
    transition(session, conversation=conversation, to=State.RESOLVED, actor=actor,
               reason="resolved")
    conversation.resolved_at = utcnow()


async def record_csat(session: AsyncSession, *, conversation: Conversation, score: int,
                      comment: str | None) -> None:
    """The customer's rating, once (caller commits); recorded for analytics with whether a
    person took part (someone claimed the conversation)."""
    if conversation.state != State.RESOLVED:
        raise Conflict("Ratings are collected once the conversation is resolved.",
                       code="not_resolved")
    if conversation.csat_score is not None:
        raise Conflict("This conversation has already been rated.", code="already_rated")
    conversation.csat_score = score
    conversation.csat_comment = comment
    await outbox.record(session, kind="csat", key=f"csat:{conversation.id}",
                        conversation_id=conversation.id, payload={
                            "score": score, "human": conversation.assigned_at is not None})


# ---------------------------------------------------------------- SLA

@dataclass(frozen=True)
class Sla:
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_breached: bool
    resolution_breached: bool

    def to_dict(self) -> dict[str, Any]:
        return {"first_response_due": self.first_response_due,
                "resolution_due": self.resolution_due,
                "first_response_breached": self.first_response_breached,
                "resolution_breached": self.resolution_breached}


def sla(conversation: Conversation, *, first_response_s: int, resolution_s: int,
        now: datetime | None = None) -> Sla:
    """Targets run from the moment the conversation was queued for a person."""
    if conversation.queued_at is None:
        return Sla(None, None, False, False)
    now = now or utcnow()
    waiting = conversation.state in (State.QUEUED, State.WITH_AGENT)

    def late(done_at: datetime | None, due: datetime) -> bool:
        return done_at > due if done_at is not None else waiting and now > due

    first_due = conversation.queued_at + timedelta(seconds=first_response_s)
    resolution_due = conversation.queued_at + timedelta(seconds=resolution_s)
    return Sla(first_due, resolution_due, late(conversation.first_agent_reply_at, first_due),
               late(conversation.resolved_at, resolution_due))
