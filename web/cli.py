"""The ``parley`` command line: the shell that builds and runs the whole platform.

``train``, ``run`` and ``serve`` live here; every domain brings its own sub-app (``nlu``,
``kb``, ``agents``, ``worker``/``kafka``/``tasks``, ``chat``, ``retention``, ``customer``) and
this module only mounts them, in the order ``parley --help`` lists them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from conversations.cli import app as chat_app
from conversations.privacy_cli import customer_app, retention_app
from core.cli import console, errors, fail, progress
from core.config import Settings, get_settings
from core.logging import configure_logging
from knowledge.cli import app as kb_app
from nlu.cli import app as nlu_app
from staff.cli import app as agents_app
from workers.cli import kafka_app, tasks_app, worker_app

if TYPE_CHECKING:
    from knowledge.ingest import ImportReport

logger = logging.getLogger(__name__)
app = typer.Typer(help="Parley: self-hosted AI customer service.", no_args_is_help=True)
serve_app = typer.Typer(help="Run one Parley process in the foreground.")
ProjectOption = Annotated[Path | None, typer.Option(
    "--project", envvar="PARLEY_PROJECT", show_envvar=False, file_okay=False,
    help="The project folder (default: $PARLEY_PROJECT, else the demo, examples/nimbus-home).")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", min=1, help="Worker processes on the one port (uvicorn's pre-fork workers). "
    "More than 1 for the API needs PARLEY_STREAM_URL=redis://… (docs/deploy.md).")]


def use_project(project: Path | None) -> None:
    """Make ``project`` the one every command (and every process started from here) uses."""
    if project is not None:
        if not project.is_dir():
            fail(f"{project}: no such project folder (create one with `parley init {project}`)")
        os.environ["PARLEY_PROJECT"] = str(project.expanduser().resolve())
        get_settings.cache_clear()


@app.callback()
def main(project: ProjectOption = None) -> None:
    """Parley: self-hosted AI customer service."""
    use_project(project)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="The new project folder.")],
    name: Annotated[str, typer.Option(help="The company's name.")] = "My Company",
    languages: Annotated[str, typer.Option(help="Comma-separated: en, zh or en,zh.")] = "en",
) -> None:
    """Create a project that works at once: parley.yml, an example article, an example intent."""
    from bot.scaffold import scaffold

    with errors():
        created = scaffold(directory, name=name,
                           languages=[x.strip() for x in languages.split(",") if x.strip()])
    console.print(f"[bold green]Created {directory}[/] ({len(created)} files). Next:\n"
                  f"  parley check --project {directory}\n"
                  f"  parley run --project {directory}")


@app.command()
def check(project: ProjectOption = None) -> None:
    """Validate a project (parley.yml, dialogue, NLU data) without starting anything."""
    use_project(project)
    if not _check():
        raise typer.Exit(2)
    console.print(f"[green]{get_settings().project}: OK[/]")


@app.command()
def train(force: Annotated[bool, typer.Option(help="Retrain even if nothing changed.")] = False,
          project: ProjectOption = None) -> None:
    """Train the project's NLU and Rasa models that are missing or out of date."""
    use_project(project)
    if not _check():
        raise typer.Exit(2)
    _build(force)


@app.command()
def run(project: ProjectOption = None, workers: WorkersOption = 1) -> None:
    """Check the project, build what is missing, start NLU, actions, Rasa and the API; Ctrl-C
    stops them all. A model that is out of date keeps serving while its successor trains.
    ``--workers N`` runs N API and N NLU processes (the action server and Rasa stay one)."""
    from staff.bootstrap import ensure_demo_staff
    from web import runner

    use_project(project)
    configure_logging()
    if not _check():
        raise typer.Exit(2)
    settings, ports = runner.with_free_ports(get_settings())
    _require_shared_stream(settings, workers)
    t0 = time.monotonic()
    model, training = _build(background_nlu=True)
    staff = ensure_demo_staff(settings)
    supervisor = runner.Supervisor(runner.services(settings, model, ports, workers=workers))

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
        if training is not None:
            console.print("The NLU data changed: the previous model answers while the new one "
                          "trains; it takes over when it passes its evaluation.\n")
        if staff:
            console.print(f"Agent console: {settings.public_url}/console")
            for email, password in staff:
                console.print(f"  {email}  password: {password}")
            secrets = settings.var_dir / "secrets"
            console.print(f"  (demo accounts; passwords are kept in {secrets})\n")
        supervisor.watch()
    except KeyboardInterrupt:
        console.print("\nStopping Parley…")
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        # A second Ctrl-C or SIGTERM must not interrupt the stopping and orphan the services.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()


@serve_app.command("api")
def serve_api(workers: WorkersOption = 1) -> None:
    """The public web API, widget and pages."""
    import uvicorn

    from web.app import create_app

    configure_logging()
    settings = get_settings()
    if workers > 1:
        from core import db

        _require_shared_stream(settings, workers)
        db.upgrade_database(settings.database_url)  # once, before the workers start
        uvicorn.run("web.cli:api_worker", factory=True, workers=workers, host=settings.api_host,
                    port=settings.api_port, log_config=None, access_log=False)
        return
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_config=None, access_log=False)


@serve_app.command("nlu")
def serve_nlu(workers: WorkersOption = 1) -> None:
    """The NLU parse service Rasa calls."""
    import uvicorn

    from nlu.app import create_nlu_app

    configure_logging()
    settings = get_settings()
    if workers > 1:  # stateless but for the model it polls from the registry
        uvicorn.run("web.cli:nlu_worker", factory=True, workers=workers, host=settings.nlu_host,
                    port=settings.nlu_port, log_config=None, access_log=False)
        return
    uvicorn.run(create_nlu_app(settings), host=settings.nlu_host, port=settings.nlu_port,
                log_config=None, access_log=False)


def api_worker() -> Any:
    """The app of one API worker process (``serve api --workers N``)."""
    from web.app import create_app

    configure_logging()
    return create_app(get_settings())


def nlu_worker() -> Any:
    """The app of one NLU worker process (``serve nlu --workers N``)."""
    from nlu.app import create_nlu_app

    configure_logging()
    return create_nlu_app(get_settings())


def _require_shared_stream(settings: Settings, workers: int) -> None:
    """Several API processes must share the live stream (and so the turn locks)."""
    if workers > 1 and not settings.stream_url:
        fail(f"--workers {workers} runs {workers} API processes: they need "
             "PARLEY_STREAM_URL=redis://host:6379/0 to share live events (a customer's socket "
             "and an agent's console may sit on different processes). Turns are then kept one "
             "at a time per conversation by PostgreSQL advisory locks (PARLEY_DATABASE_URL) or "
             "Redis locks (see PARLEY_TURN_LOCK_URL in docs/deploy.md).")


def _check() -> bool:
    """Print every problem of the current project; True when there is none."""
    from bot.checks import check_project
    from core.project import ProjectError

    try:
        _, problems = check_project(get_settings())
    except ProjectError as exc:
        problems = [exc]
    for problem in problems:
        console.print(f"[red]error:[/] {escape(problem.message)}", soft_wrap=True)
    return not problems


def _build(force: bool = False, *, background_nlu: bool = False
           ) -> tuple[Path, threading.Thread | None]:
    """The NLU model, the knowledge index and the Rasa model, each only where out of date.
    With ``background_nlu`` and a model already trained, an out-of-date NLU model keeps serving
    and its successor trains in a thread (the NLU service picks it up when it is activated)."""
    from nlu.train import has_active_model, needs_training, train_for_settings
    from web import runner

    settings = get_settings()
    training: threading.Thread | None = None
    with progress() as bar:
        task = bar.add_task("NLU model", total=None)

        def step(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"NLU model: {phase}", completed=done, total=total)

        if background_nlu and not force and has_active_model(settings) \
                and needs_training(settings):
            training = threading.Thread(target=_train_quietly, args=(settings,),
                                        name="nlu-train", daemon=True)
            training.start()
            bar.update(task, description="NLU model: training in the background",
                       completed=1, total=1)
        else:
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
    return model, training


def _train_quietly(settings: Settings) -> None:
    from nlu.train import train_for_settings

    try:
        version = train_for_settings(settings)
        logger.info("NLU version %s trained in the background", version)
    except Exception:  # the previous model keeps serving; the log says why
        logger.exception("background NLU training failed")


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
app.add_typer(retention_app)
app.add_typer(kb_app, name="kb")
app.add_typer(kafka_app, name="kafka")
app.add_typer(tasks_app, name="tasks")
app.add_typer(serve_app, name="serve")
app.add_typer(nlu_app, name="nlu")
app.add_typer(agents_app, name="agents")
app.add_typer(customer_app, name="customer")

if __name__ == "__main__":
    sys.exit(app())
