"""Shapes of the knowledge-base editor API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowledge.schemas import Citation

Kind = Literal["article", "faq"]
Lang = Literal["en", "zh"]
Status = Literal["draft", "published", "deleted"]
Action = Literal["create", "edit", "publish", "restore", "delete", "entity_upsert",
                 "entity_delete"]
EntityLabel = Literal["Product", "Policy"]
ARTICLE_ID = r"^[a-z0-9][a-z0-9:_-]{0,79}$"  # also the document id ("faq:3" from a FAQ CSV)
MAX_BODY_CHARS = 50_000


class ArticleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=300)
    tags: list[str] = Field(default_factory=list, max_length=20)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS,
                      description="Markdown (for a FAQ entry: the answer).")
    note: str = Field(default="", max_length=500, description="What changed, for the history.")

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        clean: list[str] = []
        for tag in tags:
            tag = tag.strip()
            if not tag or len(tag) > 40:
                raise ValueError("tags are 1 to 40 characters")
            if tag not in clean:
                clean.append(tag)
        return clean


class ArticleCreate(ArticleBase):
    id: str = Field(pattern=ARTICLE_ID, description="Slug; also the document id in the index.")
    kind: Kind = "article"
    lang: Lang = "en"


class ArticleUpdate(ArticleBase):
    version: int = Field(ge=1, description="The version this edit started from; if it is no "
                                           "longer the latest, the edit is refused (409).")


class ArticleSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: Kind
    lang: Lang
    title: str
    tags: list[str]
    status: Status
    version: int
    published_version: int | None
    updated_at: datetime
    updated_by: int | None


class ArticlePublic(ArticleSummary):
    body: str


class ArticlesPublic(BaseModel):
    items: list[ArticleSummary]
    total: int
    limit: int
    offset: int


class VersionSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    version: int
    title: str
    author_id: int | None
    created_at: datetime
    note: str


class VersionPublic(VersionSummary):
    tags: list[str]
    body: str


class ArticleDetail(ArticlePublic):
    versions: list[VersionSummary] = Field(description="Newest first.")


class DiffPublic(BaseModel):
    article_id: str
    from_version: int
    to_version: int
    lines: list[str] = Field(description="Unified diff (title, tags, then the body).")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(max_length=MAX_BODY_CHARS)


class PreviewPublic(BaseModel):
    html: str = Field(description="Safe HTML: everything escaped, only basic Markdown tags.")


class FindingPublic(BaseModel):
    kind: Literal["instruction", "personal_data"]
    what: Literal["instruction", "email", "phone", "card", "name"]
    excerpt: str = Field(description="The sentence, or the personal data with a few words "
                                     "around it.")


class CheckPublic(BaseModel):
    article_id: str
    version: int
    findings: list[FindingPublic] = Field(description="In text order; empty when the version "
                                                      "is clean.")


class VersionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="The latest version as the client saw it.")


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="The version whose content comes back.")
    base_version: int | None = Field(default=None, ge=1,
                                     description="The latest version as the client saw it.")


class TaskPublic(BaseModel):
    task_id: str = Field(description="The worker task, or ``event:<id>`` for a change sent "
                                     "through Kafka; follow it at "
                                     "``/api/v1/kb/tasks/{task_id}``.")
    state: Literal["queued"]


class TaskStatus(BaseModel):
    task_id: str
    task: str
    state: str = Field(description="queued, running, retry, done, skipped (a newer version "
                                   "was applied already) or dead (given up; see its error)")
    attempts: int
    error: str


class ArticleChange(BaseModel):
    article: ArticlePublic
    task: TaskPublic


class AuditPublic(BaseModel):
    id: int
    actor_id: int | None
    actor_name: str | None
    action: Action
    target: str
    detail: dict[str, Any]
    created_at: datetime


class AuditsPublic(BaseModel):
    items: list[AuditPublic]
    total: int


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=500)
    lang: Lang = "en"


class AskPublic(BaseModel):
    text: str
    citations: list[Citation]
    abstained: bool
    reason: str
    generator: str


class RelationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rel: str = Field(pattern=r"^[A-Z][A-Z_]{0,39}$")
    dst_label: str = Field(pattern=r"^[A-Z][A-Za-z]{0,39}$")
    dst_key: str = Field(min_length=1, max_length=200)
    props: dict[str, Any] = Field(default_factory=dict)


class EntityUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    props: dict[str, Any] = Field(default_factory=dict, max_length=100)
    edges: list[RelationIn] | None = Field(
        default=None, max_length=100,
        description="All of the node's outgoing relations (those not listed are removed); "
                    "leave out to keep the current ones.")


class RelationPublic(BaseModel):
    rel: str
    direction: Literal["out", "in"]
    label: str
    key: str
    name: str
    props: dict[str, Any]


class EntityPublic(BaseModel):
    label: str
    key: str
    name: str
    props: dict[str, Any]
    relations: list[RelationPublic]


class EntitySummary(BaseModel):
    label: str
    key: str
    name: str


class EntityChange(BaseModel):
    label: str
    key: str
    task: TaskPublic
