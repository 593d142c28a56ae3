"""Admin API for one person's data: export it, delete it (``parley customer`` over HTTP).

The same service as the CLI (``conversations.privacy``): a person is named by e-mail or by the
host site's customer id, exactly one of them. Both actions are logged with the admin's id and
the counts, never with who the person is or what they wrote (customer data stays out of logs).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from conversations import privacy
from core.db import utcnow
from core.deps import SessionDep, SettingsDep
from core.errors import ErrorPublic, NotFound, Unprocessable
from staff.deps import AdminAgent

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/admin/customers", tags=["admin"])

NOT_NAMED = ("`customer_not_named`: neither or both of `email` and `customer_id`, or an "
             "e-mail without `@`")
VALIDATION = "`validation_error`: a field of the wrong type or too long"


class CustomerRef(BaseModel):
    """Who: their e-mail (the verified identity, or given in their messages) or the host site's
    customer id (the verified identity); exactly one."""

    email: str | None = Field(default=None, max_length=320)
    customer_id: str | None = Field(default=None, max_length=128)

    def person(self) -> privacy.Person:
        return privacy.Person.named(email=self.email, customer_id=self.customer_id)


class CustomerDelete(CustomerRef):
    confirm: bool = Field(default=False, description="Must be true: without it nothing is "
                                                     "deleted (`confirmation_required`)")


class CustomerExport(BaseModel):
    """Everything stored about the person: each conversation with its messages, verified
    identity, CSAT, hand-off fields, state changes and notes."""

    customer: dict[str, str]
    exported_at: str
    conversations: list[dict[str, Any]]


class CustomerDeleted(BaseModel):
    conversations: int = Field(description="Conversations deleted (0 when none was left)")
    deleted: dict[str, int] = Field(description="Rows deleted per table; Rasa's tracker events "
                                                "under `tracker_events`")


def _unprocessable(*codes: str) -> dict[int | str, dict[str, Any]]:
    return {422: {"model": ErrorPublic, "description": "; ".join(codes)}}


@router.post("/export", response_model=CustomerExport,
             responses={404: {"model": ErrorPublic,
                              "description": "`customer_not_found`: no conversation is stored "
                                             "for this person"},
                        **_unprocessable(NOT_NAMED, VALIDATION)})
async def export(body: CustomerRef, admin: AdminAgent, session: SessionDep,
                 response: Response) -> dict[str, Any]:
    """One person's data as a JSON download."""
    person = body.person()
    exported = await privacy.export_customer(session, person)
    logger.info("admin %d exported a customer's data (named by %s): %d conversation(s)",
                admin.id, _named_by(person), len(exported["conversations"]))
    response.headers["Content-Disposition"] = (
        f'attachment; filename="customer-export-{utcnow():%Y%m%dT%H%M%SZ}.json"')
    response.headers["Cache-Control"] = "no-store"
    return exported


@router.post("/delete", response_model=CustomerDeleted,
             responses=_unprocessable(
                 NOT_NAMED, "`confirmation_required`: `confirm` is not true; nothing was "
                 "deleted, and `details.conversations` says how many would be", VALIDATION))
async def delete(body: CustomerDelete, admin: AdminAgent, session: SessionDep,
                 settings: SettingsDep) -> CustomerDeleted:
    """Delete one person's conversations everywhere they are stored (messages, notes, state
    changes, answer facts, Rasa's tracker). Deleting again deletes nothing and says so."""
    person = body.person()
    if not body.confirm:
        try:
            found = len(await privacy.find_conversations(session, person))
        except NotFound:
            found = 0
        raise Unprocessable(f"{found} conversation(s) of this customer would be deleted. "
                            "Nothing was deleted: send confirm: true.",
                            code="confirmation_required", details={"conversations": found})
    deleted = await privacy.delete_customer(session, settings, person, missing_ok=True)
    await session.commit()  # stored before it is reported
    logger.info("admin %d deleted a customer's data (named by %s): %d conversation(s), "
                "%d row(s), %d tracker event(s)", admin.id, _named_by(person),
                deleted["conversations"],
                sum(n for table, n in deleted.items() if table != "tracker_events"),
                deleted["tracker_events"])
    return CustomerDeleted(conversations=deleted["conversations"], deleted=dict(deleted))


def _named_by(person: privacy.Person) -> str:
    return "email" if person.email else "customer_id"
