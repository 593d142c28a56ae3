"""Endpoints for Parley's own processes (the action server), guarded by the internal token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status
from pydantic import BaseModel, Field

from conversations.deps import HubDep
from core.deps import SettingsDep
from core.errors import Unauthorized
from core.security import bearer, same

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


class Partial(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


@router.post("/conversations/{conversation_id}/partial",
             status_code=status.HTTP_204_NO_CONTENT)
async def partial(conversation_id: str, body: Partial, settings: SettingsDep, hub: HubDep,
                  authorization: Annotated[str | None, Header()] = None) -> None:
    """A checked sentence of an answer still being written: shown live, stored with the final
    reply when Rasa returns it."""
    token = bearer(authorization) or ""
    if not same(token, settings.rasa_token.get_secret_value()):
        raise Unauthorized("Internal endpoint.", code="invalid_token")
    hub.publish(conversation_id, {"type": "partial", "text": body.text})
