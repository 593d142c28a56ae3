"""What every domain's command line shares: one console, one progress bar, one error form.

A ``ParleyError`` inside ``errors()`` is printed as ``error: <message>`` (no traceback) and
ends the command with exit code 2, as does ``fail``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from core.errors import ParleyError

console = Console()


def progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    console=console)


@contextmanager
def staged_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar with one row per stage; yields ``step(stage, done, total)``."""
    with progress() as bar:
        rows: dict[str, TaskID] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in rows:
                rows[stage] = bar.add_task(stage, total=total)
            bar.update(rows[stage], completed=done)

        yield step


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except ParleyError as exc:
        console.print(f"[red]error:[/] {exc.message}", soft_wrap=True)
        raise typer.Exit(2) from exc
