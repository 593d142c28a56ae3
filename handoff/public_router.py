"""The customer's side of a hand-off, on the public conversation API: where they stand in the
queue, and their rating once the conversation is resolved. Same paths and token as
``conversations.router``."""

from __future__ import annotations

from fastapi import APIRouter, status

from conversations import service
from conversations.deps import ConversationAccess, HubDep
from conversations.flows import AGENTS_TOPIC
from conversations.router import ERRORS
from conversations.state import State
from core.deps import SessionDep
from handoff import service as handoff
from handoff.schemas import CsatCreate, QueueStatus

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


@router.get("/{conversation_id}/queue", response_model=QueueStatus,
            responses={k: ERRORS[k] for k in (401, 403, 404)})
async def queue_status(conversation_id: ConversationAccess, session: SessionDep) -> QueueStatus:
    """Where the customer stands while waiting for a person."""
    conversation = await service.get_conversation(session, conversation_id=conversation_id)
    position = await handoff.queue_position(session, conversation=conversation)
    online = await handoff.online_agents(session)
    average = await handoff.average_wait_s(session)
    estimate = None
    if position is not None and online:
        estimate = round(average * position / max(online, 1), 1)
    return QueueStatus(state=State(conversation.state), position=position,
                       estimated_wait_s=estimate, agents_online=online)


@router.post("/{conversation_id}/csat", status_code=status.HTTP_204_NO_CONTENT,
             responses={**{k: ERRORS[k] for k in (401, 403, 404)},
                        409: {"description": "`not_resolved`, `already_rated`"}})
async def rate(conversation_id: ConversationAccess, body: CsatCreate, session: SessionDep,
               hub: HubDep) -> None:
    conversation = await service.get_conversation(session, conversation_id=conversation_id)
    await handoff.record_csat(session, conversation=conversation, score=body.score,
                              comment=(body.comment or "").strip() or None)
    await session.commit()  # stored before the consoles hear of it
    hub.publish(AGENTS_TOPIC, {"type": "csat", "conversation_id": conversation_id,
                               "score": body.score})
