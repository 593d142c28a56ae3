"""The ``parley`` command line: the shell that builds and runs the whole platform.

``train``, ``run`` and ``serve`` live here; every domain brings its own sub-app (``nlu``,
``kb``, ``agents``, ``worker``/``kafka``/``tasks``, ``chat``) and this module only mounts
them, in the order ``parley --help`` lists them.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conversations.cli import app as chat_app
from core.cli import console, progress
from core.config import get_settings
from core.logging import configure_logging
from knowledge.cli import app as kb_app
from nlu.cli import app as nlu_app
from staff.cli import app as agents_app
from workers.cli import kafka_app, tasks_app, worker_app

if TYPE_CHECKING:
    from knowledge.ingest import ImportReport

app = typer.Typer(help="Parley: self-hosted AI customer service.", no_args_is_help=True)
serve_app = typer.Typer(help="Run one Parley process in the foreground.")


@app.command()
def train(force: Annotated[bool, typer.Option(help="Retrain even if nothing changed.")] = False
          ) -> None:
    """Train the NLU and Rasa models that are missing or out of date."""
    _build(force)


@app.command()
def run() -> None:
    """Train what is missing, start NLU, actions, Rasa and the API; Ctrl-C stops them all."""
    from staff.bootstrap import ensure_demo_staff
    from web import runner

    configure_logging()
    settings = get_settings()
    t0 = time.monotonic()
    model = _build()
    staff = ensure_demo_staff(settings)
    supervisor = runner.Supervisor(runner.services(settings, model))

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        with progress() as bar:
            task = bar.add_task("Starting services", total=len(supervisor.services))
            supervisor.start_all(lambda s, took: bar.update(
                task, advance=1, description=f"{s.name} ready ({took:.1f}s)"))
        console.print(f"\n[bold green]Parley is running at {settings.public_url}[/] "
                      f"(ready in {time.monotonic() - t0:.0f}s). "
                      f"API docs: {settings.public_url}/docs. Logs: {settings.var_dir / 'logs'}. "
                      "Press Ctrl-C to stop.\n")
        if staff:
            console.print(f"Agent console: {settings.public_url}/console")
            for email, password in staff:
                console.print(f"  {email}  password: {password}")
            console.print("  (demo accounts; passwords are kept in var/secrets/)\n")
        supervisor.watch()
    except KeyboardInterrupt:
        console.print("\nStopping Parley…")
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        supervisor.stop_all()


@serve_app.command("api")
def serve_api() -> None:
    """The public web API, widget and pages."""
    import uvicorn

    from web.app import create_app

    configure_logging()
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_config=None, access_log=False)


@serve_app.command("nlu")
def serve_nlu() -> None:
    """The NLU parse service Rasa calls."""
    import uvicorn

    from nlu.app import create_nlu_app

    configure_logging()
    settings = get_settings()
    uvicorn.run(create_nlu_app(settings), host=settings.nlu_host, port=settings.nlu_port,
                log_config=None, access_log=False)


def _build(force: bool = False) -> Path:
    """The NLU model, the knowledge index and the Rasa model, each only where out of date."""
    from nlu.train import train_for_settings
    from web import runner

    settings = get_settings()
    with progress() as bar:
        task = bar.add_task("NLU model", total=None)

        def step(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"NLU model: {phase}", completed=done, total=total)

        version = train_for_settings(settings, progress=step)
        bar.update(task, description=f"NLU model {version}", completed=1, total=1)
        kb_task = bar.add_task("Knowledge base", total=None)
        report = _sync_kb(lambda file: bar.update(
            kb_task, description=f"Knowledge: {file.name}"))
        bar.update(kb_task, total=1, completed=1, description=(
            f"Knowledge: {report.added} new, {report.unchanged} unchanged chunks"))
        rasa_task = bar.add_task("Rasa dialogue model", total=1)
        model = runner.train_rasa(settings, force=force)
        bar.update(rasa_task, description=f"Rasa model {model.name}", completed=1)
    return model


def _sync_kb(step: Callable[[Path], None]) -> ImportReport:
    import asyncio

    from knowledge.sync import sync_all

    report, _ = asyncio.run(sync_all(get_settings(), progress=step))
    for name, error in report.failed:
        console.print(f"[yellow]skipped {name}: {error}[/]")
    return report


# The order here is the order of `parley --help`: commands first, then groups.
app.add_typer(worker_app)
app.add_typer(chat_app)
app.add_typer(kb_app, name="kb")
app.add_typer(kafka_app, name="kafka")
app.add_typer(tasks_app, name="tasks")
app.add_typer(serve_app, name="serve")
app.add_typer(nlu_app, name="nlu")
app.add_typer(agents_app, name="agents")

if __name__ == "__main__":
    sys.exit(app())
