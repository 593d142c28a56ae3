"""The one conversation state machine: bot → queued → with_agent → bot | resolved.

Every transition goes through ``transition`` and is audited (who, when, why) in the same
transaction as the change. The hand-off package builds routing and claiming on top of it; the
public schemas take their ``State`` from here.

    bot ──→ queued ──→ with_agent ──→ bot
     │        │  ↑          │
     │        │  └──────────┤ (transfer)
     ↓        ↓             ↓
    resolved ←──────────────┘   (a new customer message reopens: resolved → bot)
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from conversations.models import Conversation, StateTransition
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
