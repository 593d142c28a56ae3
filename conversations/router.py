"""HTTP layer of the public conversation API (thin: validation, auth, flows)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, WebSocket, status

from conversations import flows, service
from conversations.deps import (
    ConversationAccess,
    DialogueDep,
    EscalationDep,
    HubDep,
    LimitsDep,
)
from conversations.schemas import (
    ConversationCreate,
    ConversationPublic,
    MessageCreate,
    TranscriptPublic,
    TurnPublic,
)
from conversations.state import State
from conversations.stream import pump, refuse
from core.customers import VERIFIED_CUSTOMER_SLOT, verify_customer_token
from core.deps import MakerDep, SessionDep, SettingsDep
from core.errors import ParleyError
from core.logging import conversation_id_var
from core.ratelimit import client_address
from core.security import mint_conversation_token, verify_conversation_token

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid JSON (`invalid_json`)"},
    401: {"description": "Missing, invalid or expired token (`missing_token`, `invalid_token`, "
                         "`token_expired`)"},
    403: {"description": "Token for another conversation (`token_scope`)"},
    404: {"description": "Unknown conversation (`conversation_not_found`)"},
    413: {"description": "Body too large (`payload_too_large`)"},
    422: {"description": "Invalid body (`validation_error`, `text_empty`, `text_too_long`, "
                         "`unknown_payload`: a button the bot's latest turn did not offer)"},
    429: {"description": "Too many messages in this conversation (`rate_limited`, with "
                         "Retry-After)"},
}

CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "A forged, malformed or expired customer token "
                         "(`customer_token_invalid`, `customer_token_expired`)"},
    422: {"description": "Invalid body (`validation_error`); a customer token while "
                         "PARLEY_CUSTOMER_SIGNING_KEY is not set (`customer_tokens_disabled`)"},
    503: {"description": "A verified customer could not be handed to the dialogue manager "
                         "(`dialogue_unavailable`); nothing was stored"},
}
# The dialogue slot a verified customer's identity travels in (the demo's dialogue/domain.yml).


@router.post("", response_model=ConversationPublic, status_code=status.HTTP_201_CREATED,
             responses={**{k: ERRORS[k] for k in (400, 413, 422, 429)}, **CREATE_ERRORS})
async def create_conversation(request: Request, settings: SettingsDep, session: SessionDep,
                              limits: LimitsDep, dialogue: DialogueDep,
                              body: ConversationCreate | None = None) -> ConversationPublic:
    limits.conversations.check(client_address(request, settings.trusted_proxies),
                               "new conversations")
    identity = None
    if body and body.customer_token:  # refused before anything is stored
        identity = verify_customer_token(
            body.customer_token, key=settings.customer_signing_key.get_secret_value())
    conversation = await service.create_conversation(
        session, locale=(body.locale if body and body.locale else "en"))
    if identity is not None:
        conversation.customer_identity = identity.as_dict()
        # The actions read it from this slot (bot/actions/orders.py); if Rasa cannot take it,
        # the 503 rolls the conversation back and the widget retries.
        await dialogue.set_slots(conversation.id, {VERIFIED_CUSTOMER_SLOT: identity.as_dict()},
                                 new_conversation=True)
    token = mint_conversation_token(conversation.id, key=settings.secret_key.get_secret_value())
    return ConversationPublic(id=conversation.id, token=token, locale=conversation.locale,
                              state=State(conversation.state),
                              verified_customer=identity is not None)


@router.post("/{conversation_id}/messages", response_model=TurnPublic,
             response_model_exclude_none=True,
             responses={**ERRORS, 409: {"description": "This client_message_id was already "
                                                       "used for another text or button "
                                                       "(`client_message_id_reused`)"}})
async def post_message(conversation_id: ConversationAccess, body: MessageCreate,
                       settings: SettingsDep, maker: MakerDep, dialogue: DialogueDep,
                       hub: HubDep, escalation: EscalationDep, limits: LimitsDep) -> TurnPublic:
    conversation_id_var.set(conversation_id)
    limits.messages.check(conversation_id, "messages in this conversation")
    return await flows.post_customer_message(
        maker=maker, dialogue=dialogue, hub=hub, escalation=escalation,
        conversation_id=conversation_id, body=body, max_chars=settings.max_message_chars)


@router.get("/{conversation_id}/messages", response_model=TranscriptPublic,
            response_model_exclude_none=True, responses={k: ERRORS[k] for k in (401, 403, 404)})
async def get_transcript(conversation_id: ConversationAccess,
                         session: SessionDep) -> TranscriptPublic:
    conversation = await service.get_conversation(session, conversation_id=conversation_id)
    messages = await service.transcript(session, conversation_id=conversation_id)
    return TranscriptPublic(id=conversation.id, state=State(conversation.state),
                            locale=conversation.locale,
                            messages=[service.to_public(m) for m in messages])


@router.websocket("/{conversation_id}/stream")
async def stream(websocket: WebSocket, conversation_id: str, settings: SettingsDep,
                 maker: MakerDep, hub: HubDep) -> None:
    """Live events: ``{"type": "message", "message": {...}}`` and ``{"type": "state", ...}``.

    The first frame is ``{"type": "hello", "conversation_id": ...}``, sent once the
    subscription is live: every event published after it arrives, so a client that fetches
    the transcript on hello misses nothing. Browsers cannot set headers on a WebSocket, so
    the token comes as ``?token=``. The widget sends ``{"type": "typing"}`` while the customer
    types; it reaches the agent consoles.
    """
    try:
        verify_conversation_token(websocket.query_params.get("token"), conversation_id,
                                  key=settings.secret_key.get_secret_value(),
                                  ttl_s=settings.token_ttl_s)
        # Its own short session: a session held for the socket's life would hold a transaction.
        async with maker() as session:
            await service.get_conversation(session, conversation_id=conversation_id)
    except ParleyError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()

    last_typing = 0.0

    def on_frame(frame: dict[str, Any]) -> None:
        nonlocal last_typing
        now = time.monotonic()
        # Typing frames reach every agent console: at most PARLEY_TYPING_FRAMES_PER_S of them.
        if frame.get("type") == "typing" and now - last_typing >= 1 / settings.typing_frames_per_s:
            last_typing = now
            flows.typing(hub, conversation_id=conversation_id, role="customer")

    await pump(websocket, hub, conversation_id, on_frame=on_frame,
               hello={"type": "hello", "conversation_id": conversation_id})
