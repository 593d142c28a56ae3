"""Conversation ownership: bot → queued → with_agent → bot | resolved.

This module holds the state machine's rules; the agent console, routing and SLA build on it.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import StateTransition
from web.conversations.models import Conversation
from web.core.errors import Conflict


class State(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    WITH_AGENT = "with_agent"
    RESOLVED = "resolved"


ALLOWED: dict[State, set[State]] = {
    State.BOT: {State.QUEUED, State.RESOLVED},
    State.QUEUED: {State.WITH_AGENT, State.BOT, State.RESOLVED},
    State.WITH_AGENT: {State.BOT, State.RESOLVED, State.QUEUED},
    State.RESOLVED: {State.BOT},
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
