"""Dependencies of the conversation routes: the dialogue engine, the live stream hub, and the
widget token that opens exactly one conversation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from conversations.dialogue import DialogueEngine
from conversations.escalation import Escalation
from conversations.stream import StreamHub
from core.config import Settings
from core.deps import SettingsDep
from core.ratelimit import RateLimiter, storage_url
from core.security import bearer, verify_conversation_token


def get_dialogue(request: HTTPConnection) -> DialogueEngine:
    dialogue: DialogueEngine = request.app.state.dialogue
    return dialogue


def get_hub(request: HTTPConnection) -> StreamHub:
    hub: StreamHub = request.app.state.hub
    return hub


def get_escalation(request: HTTPConnection) -> Escalation:
    escalation: Escalation = request.app.state.escalation
    return escalation


DialogueDep = Annotated[DialogueEngine, Depends(get_dialogue)]
HubDep = Annotated[StreamHub, Depends(get_hub)]
EscalationDep = Annotated[Escalation, Depends(get_escalation)]


def conversation_access(
    conversation_id: str, settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The widget's token must be for exactly this conversation."""
    verify_conversation_token(bearer(authorization), conversation_id,
                              key=settings.secret_key.get_secret_value(),
                              ttl_s=settings.token_ttl_s)
    return conversation_id


ConversationAccess = Annotated[str, Depends(conversation_access)]


class Limits:
    """The public API's abuse limits (``PARLEY_RATE_*``), one set per app."""

    def __init__(self, settings: Settings) -> None:
        url, prefix = storage_url(settings), settings.redis_prefix
        self.conversations = RateLimiter(per_minute=settings.rate_conversations_per_minute,
                                         burst=settings.rate_conversations_burst,
                                         name="conversations", url=url, prefix=prefix)
        self.messages = RateLimiter(per_minute=settings.rate_messages_per_minute,
                                    burst=settings.rate_messages_burst, name="messages",
                                    url=url, prefix=prefix)


def get_limits(request: HTTPConnection) -> Limits:
    limits: Limits | None = getattr(request.app.state, "limits", None)
    if limits is None:
        limits = request.app.state.limits = Limits(request.app.state.settings)
    return limits


LimitsDep = Annotated[Limits, Depends(get_limits)]
