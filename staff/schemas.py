from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# agent: the console; admin: the console and administration; analyst: analytics only.
Role = Literal["agent", "admin", "analyst"]
Presence = Literal["online", "away", "offline"]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class AgentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    email: str
    name: str
    role: Role
    skills: list[str]
    languages: list[str]
    max_concurrent: int
    presence: Presence


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=10, max_length=256)
    role: Role = "agent"
    skills: list[str] = Field(default_factory=list, max_length=20)
    languages: list[str] = Field(default_factory=lambda: ["en"], max_length=10)
    max_concurrent: int = Field(default=3, ge=1, le=50)


class PresenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    presence: Presence


class SessionPublic(BaseModel):
    token: str
    expires_at: datetime
    agent: AgentPublic
