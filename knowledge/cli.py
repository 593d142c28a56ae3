"""``parley kb``: the knowledge base from the command line.

``kb import`` publishes articles through the workers like the editor does. In the foreground
it waits until they are indexed, working the embedded queue itself unless another process
does; with ``--background`` it returns once they are queued. It exits 2 when the path is
missing or ``--as`` names no admin, and 1 when some files (or articles) were skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import console, fail, progress
from core.config import get_settings

app = typer.Typer(help="The knowledge base: documents, FAQs and the company graph.")


@app.command("import")
def kb_import(
    path: Path,
    as_email: Annotated[str | None, typer.Option(
        "--as", help="Email of the admin the editor's history names.")] = None,
    background: Annotated[bool, typer.Option(
        help="Hand the indexing to the workers instead of doing it now.")] = False,
) -> None:
    """Import a file or folder into the knowledge base.

    Markdown articles and FAQ CSVs go through the knowledge editor: a new version when the
    file changed, then published. HTML and PDF files are indexed directly.
    """
    import asyncio
    import contextlib
    from collections.abc import Callable

    from rich.markup import escape
    from sqlalchemy import select

    from core import db
    from knowledge.articles.imports import FilesImported, import_files
    from knowledge.ingest import ImportReport, collect_files
    from knowledge.sync import import_into
    from staff.models import Agent
    from workers.embedded import EmbeddedQueue
    from workers.errors import WorkerAlreadyRunning
    from workers.queue import TaskQueue, get_queue

    settings = get_settings()
    if not path.exists():
        fail(f"{path} does not exist")
    db.upgrade_database(settings.database_url)

    async def run(queue: TaskQueue,
                  step: Callable[[Path], None]) -> tuple[FilesImported, ImportReport]:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                actor = None
                if as_email:
                    actor = (await session.execute(select(Agent).where(
                        Agent.email == as_email.lower()))).scalar_one_or_none()
                    if actor is None or actor.role != "admin":
                        raise typer.BadParameter(f"no admin account {as_email}",
                                                 param_hint="--as")
                articles = await import_files(session, path, actor, settings=settings,
                                              queue=queue, wait=not background,
                                              progress=step)
        finally:
            await engine.dispose()
        others = ImportReport()
        for name in articles.skipped:  # HTML and PDF: straight into the index
            report = await import_into(settings, Path(name))
            others.files += report.files
            others.added += report.added
            others.failed += report.failed
        return articles, others

    queue = get_queue(settings)
    if not background and isinstance(queue, EmbeddedQueue):
        with contextlib.suppress(WorkerAlreadyRunning):  # else that worker indexes them
            queue.start()
    try:
        with progress() as bar:
            task = bar.add_task("importing", total=len(collect_files(path)))
            articles, others = asyncio.run(run(queue, lambda file: bar.update(
                task, advance=1, description=f"importing {file.name}")))
    finally:
        queue.close()
    for name, error in [*articles.failed, *others.failed]:
        console.print(f"[yellow]skipped {escape(name)}: {escape(error)}[/]")
    console.print(f"{articles.files} files: {len(articles.created)} new and "
                  f"{len(articles.updated)} changed articles published, "
                  f"{len(articles.unchanged)} unchanged; {others.files} other files indexed")
    if background and articles.tasks:
        console.print(f"{len(articles.tasks)} indexing tasks queued for the workers")
    if articles.failed or others.failed:
        raise typer.Exit(1)
