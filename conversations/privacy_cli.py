"""``parley retention`` and ``parley customer export|delete``: data care from the command line.

Both act on the project's database directly (no running API needed). A person who cannot be
found, or is named both ways or not at all, is one error line and exit code 2; ``delete``
without ``--yes`` only says what it would delete, and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cli import console, errors, fail
from core.config import Settings, get_settings

retention_app = typer.Typer()
customer_app = typer.Typer(help="One person's data: export it, delete it.")
T = TypeVar("T")
EmailOption = Annotated[str | None, typer.Option(
    "--email", help="The person's e-mail: the verified identity, or given in their messages.")]
CustomerIdOption = Annotated[str | None, typer.Option(
    "--customer-id", help="The host site's customer id (the verified identity).")]


def _run(work: Callable[[async_sessionmaker[AsyncSession], Settings], Awaitable[T]]) -> T:
    from core import db

    settings = get_settings()
    db.upgrade_database(settings.database_url)

    async def main() -> T:
        engine = db.create_engine(settings.database_url)
        try:
            return await work(db.sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@retention_app.command()
def retention(
    days: Annotated[int | None, typer.Option(
        min=1, help="Delete conversations with no activity for this many days "
        "(default: PARLEY_RETENTION_DAYS).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Conversations per transaction.")] = 500,
) -> None:
    """Delete old conversations: messages, notes, audit rows, Rasa trackers, answer facts.
    Hourly analytics and the text-free per-conversation facts stay."""
    from conversations.retention import apply_retention

    days = days or get_settings().retention_days
    if not days:
        fail("give --days N (or set PARLEY_RETENTION_DAYS)")
    report = _run(lambda sessions, settings: apply_retention(
        sessions, settings, days=days, batch=batch_size))
    console.print(f"Deleted {report.conversations} conversation(s) with no activity since "
                  f"{report.cutoff:%Y-%m-%d %H:%M} UTC, in {report.batches} batch(es).",
                  soft_wrap=True)
    for name, count in sorted(report.deleted.items()):
        console.print(f"  {name}: {count}")
    console.print(f"  Rasa tracker events: {report.tracker_events}")
    if report.kept_tables:
        console.print(f"  kept (no personal text): {', '.join(report.kept_tables)}",
                      soft_wrap=True)


@customer_app.command("export")
def customer_export(
    email: EmailOption = None, customer_id: CustomerIdOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", dir_okay=False, help="Write the JSON here (readable by you only), "
        "not to standard output.")] = None,
) -> None:
    """Everything stored about one person, as JSON: conversations with their messages, the
    verified identity, CSAT, hand-offs and notes."""
    from conversations.privacy import Person, export_customer

    async def work(sessions: async_sessionmaker[AsyncSession], _: Settings) -> dict[str, Any]:
        async with sessions() as session:
            return await export_customer(session, person)

    with errors():
        person = Person.named(email=email, customer_id=customer_id)
        exported = _run(work)
    text = json.dumps(exported, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    console.print(f"Wrote {len(exported['conversations'])} conversation(s) to {out}",
                  highlight=False)


@customer_app.command("delete")
def customer_delete(
    email: EmailOption = None, customer_id: CustomerIdOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
) -> None:
    """Delete one person's conversations (messages, notes, audits, trackers); needs --yes."""
    from conversations.privacy import Person, delete_customer, find_conversations

    async def find(sessions: async_sessionmaker[AsyncSession], _: Settings) -> dict[str, Any]:
        async with sessions() as session:
            return await find_conversations(session, person)

    async def delete(sessions: async_sessionmaker[AsyncSession], settings: Settings
                     ) -> dict[str, int]:
        async with sessions() as session, session.begin():
            return dict(await delete_customer(session, settings, person))

    with errors():
        person = Person.named(email=email, customer_id=customer_id)
        if not yes:
            found = _run(find)
            console.print(f"{len(found)} conversation(s) of this customer would be deleted. "
                          "Nothing was deleted: rerun with --yes.", soft_wrap=True)
            raise typer.Exit(1)
        deleted = _run(delete)
    console.print(f"Deleted {deleted.get('conversations', 0)} conversation(s).")
    for name, count in sorted(deleted.items()):
        console.print(f"  {name}: {count}")
