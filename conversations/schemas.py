"""Shapes of the public conversation API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conversations.data import Button
from conversations.models import Role
from conversations.state import State
from knowledge.schemas import Citation


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: Literal["en", "zh"] | None = Field(default=None, description="Preferred language.")
    customer_token: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="A verified customer: the host site's HS256 token of `{email or "
                    "customer_id, exp}` signed with PARLEY_CUSTOMER_SIGNING_KEY (README, "
                    "\"Verified customers\"). Forged or malformed: 401 "
                    "`customer_token_invalid`; expired: 401 `customer_token_expired`.")


class ConversationPublic(BaseModel):
    id: str
    token: str = Field(description="Bearer token scoped to this one conversation.")
    locale: str
    state: State
    verified_customer: bool = Field(default=False, description="The conversation was "
                                    "created with a valid customer token.")


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="The customer's message; 1 to PARLEY_MAX_MESSAGE_CHARS "
                                  "characters (4,000 by default) after trimming.")
    client_message_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                                   description="Client-chosen id; resending it returns the "
                                               "same reply instead of a second one.")
    payload: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="A button click: the button's payload, with its title as `text`. Accepted "
                    "only if the bot's latest turn offered that button (else 422 "
                    "`unknown_payload`); the payload goes to the dialogue, the title is stored. "
                    "Typed text is never read as a command.")

    @field_validator("text")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("the text is not valid Unicode (a lone surrogate)") from exc
        return value


class MessagePublic(BaseModel):
    id: str
    role: Role
    text: str
    created_at: datetime
    buttons: list[Button] | None = None
    citations: list[Citation] | None = None
    client_message_id: str | None = None
    author: str | None = Field(default=None, description="The agent's name, for agent messages.")
    system: bool | None = Field(default=None, description="A notice from Parley itself (an "
                                                          "agent joined, hand-back, rating).")


class TurnPublic(BaseModel):
    messages: list[MessagePublic]
    state: State


class TranscriptPublic(BaseModel):
    id: str
    state: State
    locale: str
    messages: list[MessagePublic]
