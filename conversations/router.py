"""HTTP layer of the public conversation API (thin: validation, auth, flows)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

from conversations import flows, service
from conversations.deps import ConversationAccess, DialogueDep, EscalationDep, HubDep
from conversations.schemas import (
    ConversationCreate,
    ConversationPublic,
    MessageCreate,
    TranscriptPublic,
    TurnPublic,
)
from conversations.stream import StreamHub
from core.deps import MakerDep, SettingsDep
from core.errors import ParleyError
from core.logging import conversation_id_var
from core.security import mint_conversation_token, verify_conversation_token

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

ERRORS = {
    400: {"description": "Invalid JSON (`invalid_json`)"},
    401: {"description": "Missing, invalid or expired token (`missing_token`, `invalid_token`, "
                         "`token_expired`)"},
    403: {"description": "Token for another conversation (`token_scope`)"},
    404: {"description": "Unknown conversation (`conversation_not_found`)"},
    413: {"description": "Body too large (`payload_too_large`)"},
    422: {"description": "Invalid body (`validation_error`, `text_empty`, `text_too_long`)"},
}


@router.post("", response_model=ConversationPublic, status_code=status.HTTP_201_CREATED,
             responses={k: ERRORS[k] for k in (400, 413, 422)})
async def create_conversation(settings: SettingsDep, maker: MakerDep,
                              body: ConversationCreate | None = None) -> ConversationPublic:
    async with maker() as session:
        conversation = await service.create_conversation(
            session, locale=(body.locale if body and body.locale else "en"))
        await session.commit()
    token = mint_conversation_token(conversation.id, key=settings.secret_key.get_secret_value())
    return ConversationPublic(id=conversation.id, token=token, locale=conversation.locale,
                              state=conversation.state)


@router.post("/{conversation_id}/messages", response_model=TurnPublic,
             response_model_exclude_none=True, responses=ERRORS)
async def post_message(conversation_id: ConversationAccess, body: MessageCreate,
                       settings: SettingsDep, maker: MakerDep, dialogue: DialogueDep,
                       hub: HubDep, escalation: EscalationDep) -> TurnPublic:
    conversation_id_var.set(conversation_id)
    return await flows.post_customer_message(
        maker=maker, dialogue=dialogue, hub=hub, escalation=escalation,
        conversation_id=conversation_id, body=body, max_chars=settings.max_message_chars)


@router.get("/{conversation_id}/messages", response_model=TranscriptPublic,
            response_model_exclude_none=True, responses={k: ERRORS[k] for k in (401, 403, 404)})
async def get_transcript(conversation_id: ConversationAccess, maker: MakerDep) -> TranscriptPublic:
    async with maker() as session:
        conversation = await service.get_conversation(session, conversation_id=conversation_id)
        messages = await service.transcript(session, conversation_id=conversation_id)
    return TranscriptPublic(id=conversation.id, state=conversation.state,
                            locale=conversation.locale,
                            messages=[service.to_public(m) for m in messages])


@router.websocket("/{conversation_id}/stream")
async def stream(websocket: WebSocket, conversation_id: str, settings: SettingsDep,
                 maker: MakerDep, hub: HubDep) -> None:
    """Live events: ``{"type": "message", "message": {...}}`` and ``{"type": "state", ...}``.

    Browsers cannot set headers on a WebSocket, so the token comes as ``?token=``.
    """
    token = websocket.query_params.get("token")
    try:
        verify_conversation_token(token, conversation_id,
                                  key=settings.secret_key.get_secret_value(),
                                  ttl_s=settings.token_ttl_s)
        async with maker() as session:
            await service.get_conversation(session, conversation_id=conversation_id)
    except ParleyError as exc:
        # Accept first: a close before the handshake reaches browsers as a bare 1006.
        await websocket.accept()
        await websocket.close(code=4000 + exc.status_code, reason=exc.code)
        return
    await websocket.accept()
    queue = hub.subscribe(conversation_id)
    receiver = asyncio.create_task(_drain(websocket, hub, conversation_id))
    try:
        while not receiver.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await websocket.send_json(getter.result())
            else:
                getter.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(conversation_id, queue)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiver


async def _drain(websocket: WebSocket, hub: StreamHub, conversation_id: str) -> None:
    """Read client frames until the client goes away; ``{"type": "typing"}`` is relayed to
    the agent consoles, anything else is ignored."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            if json.loads(message.get("text") or "{}").get("type") == "typing":
                flows.typing(hub, conversation_id=conversation_id, role="customer")
