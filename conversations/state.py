"""The one conversation state machine: bot → queued → with_agent → bot | resolved.

Every transition goes through ``transition`` and is audited (who, when, why) in the same
transaction as the change; each audit row also writes its analytics events to the outbox
(``core.outbox``) in the same flush, keyed by the audit row's id (``_outbox_events``). The
hand-off package builds routing and claiming on top of it; the public schemas take their
``State`` from here.

    bot ──→ queued ──→ with_agent ──→ bot
     │        │  ↑          │
     │        │  └──────────┤ (transfer)
     ↓        ↓             ↓
    resolved ←──────────────┘   (a new customer message reopens: resolved → bot)
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import Conversation, StateTransition
from core import outbox
from core.db import utcnow
from core.errors import Conflict


class State(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    WITH_AGENT = "with_agent"
    RESOLVED = "resolved"


ALLOWED: dict[State, set[State]] = {
    State.BOT: {State.QUEUED, State.RESOLVED},
    State.QUEUED: {State.WITH_AGENT, State.BOT, State.RESOLVED},
    State.WITH_AGENT: {State.BOT, State.RESOLVED, State.QUEUED},
    State.RESOLVED: {State.BOT, State.QUEUED},
}


def transition(
    session: AsyncSession, *, conversation: Conversation, to: State, actor: str, reason: str
) -> StateTransition:
    """Move ``conversation`` to ``to`` and record who did it and why (caller commits)."""
    current = State(conversation.state)
    if to not in ALLOWED[current]:
        raise Conflict(f"A conversation in state '{current}' cannot move to '{to}'.",
                       code="invalid_transition")
    audit = StateTransition(conversation_id=conversation.id, from_state=current, to_state=to,
                            actor=actor, reason=reason)
    conversation.state = to
    session.add(audit)
    return audit


def bot_is_active(conversation: Conversation) -> bool:
    return conversation.state in (State.BOT, State.RESOLVED)


def request_handoff(session: AsyncSession, *, conversation: Conversation, reason: str,
                    actor: str, priority: int = 0, skill: str | None = None) -> StateTransition:
    """Queue the conversation for a person (caller commits)."""
    audit = transition(session, conversation=conversation, to=State.QUEUED, actor=actor,
                       reason=reason)
    conversation.queued_at = utcnow()
    conversation.handoff_reason = reason
    conversation.priority = priority
    conversation.skill = skill
    conversation.agent_id = None
    conversation.assigned_at = conversation.first_agent_reply_at = None
    conversation.resolved_at = None
    return audit


def resolve_by_bot(session: AsyncSession, *, conversation: Conversation,
                   reason: str) -> StateTransition:
    """The dialogue closed the conversation (caller commits); a new message reopens it."""
    audit = transition(session, conversation=conversation, to=State.RESOLVED, actor="bot",
                       reason=reason)
    conversation.resolved_at = utcnow()
    return audit


# ---------------------------------------------------------------- outbox events

_AGENT = re.compile(r"agent:(\d+)")


def events_of(audit: StateTransition) -> list[tuple[str, dict[str, Any]]]:
    """The analytics events one audited transition stands for: (kind, payload)."""
    events: list[tuple[str, dict[str, Any]]] = []
    source, target = State(audit.from_state), State(audit.to_state)
    if source == State.RESOLVED and target != State.RESOLVED:
        events.append(("reopened", {"actor": audit.actor}))
    if target == State.QUEUED and source in (State.BOT, State.RESOLVED):
        events.append(("handoff", {"reason": audit.reason, "actor": audit.actor}))
    if target == State.WITH_AGENT:
        # Claimed ("agent:7", "claimed") or transferred ("transfer to agent:9").
        found = _AGENT.search(audit.reason) if source == State.WITH_AGENT else \
            _AGENT.fullmatch(audit.actor)
        if found:
            events.append(("assigned", {"agent_id": int(found[1])}))
    if target == State.RESOLVED:
        by = "agent" if audit.actor.startswith("agent:") else "bot"
        events.append(("resolved", {"by": by, "actor": audit.actor}))
    return events


@event.listens_for(StateTransition, "after_insert")
def _outbox_events(_mapper: Any, connection: Connection, target: StateTransition) -> None:
    for kind, payload in events_of(target):
        outbox.record_on(connection, kind=kind, key=f"{kind}:{target.id}",
                         conversation_id=target.conversation_id,
                         at=target.created_at or utcnow(), payload=payload)
