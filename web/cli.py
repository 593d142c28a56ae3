"""The ``parley`` command line."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from core.config import get_settings
from core.logging import configure_logging

app = typer.Typer(help="Parley: self-hosted AI customer service.", no_args_is_help=True)
serve_app = typer.Typer(help="Run one Parley process in the foreground.")
nlu_app = typer.Typer(help="Train and try NLU models.")
agents_app = typer.Typer(help="Staff accounts (agents and admins).")
kb_app = typer.Typer(help="The knowledge base: documents, FAQs and the company graph.")
app.add_typer(kb_app, name="kb")
kafka_app = typer.Typer(help="Knowledge changes over Kafka.")
tasks_app = typer.Typer(help="Background tasks: dead letters and retries.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(tasks_app, name="tasks")
app.add_typer(serve_app, name="serve")
app.add_typer(nlu_app, name="nlu")
app.add_typer(agents_app, name="agents")
console = Console()


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    console=console)


def _build(force: bool = False) -> Path:
    from nlu.train import train_for_settings
    from web import runner

    settings = get_settings()
    with _progress() as progress:
        task = progress.add_task("NLU model", total=None)

        def step(phase: str, done: int, total: int) -> None:
            progress.update(task, description=f"NLU model: {phase}", completed=done,
                            total=total)

        version = train_for_settings(settings, progress=step)
        progress.update(task, description=f"NLU model {version}", completed=1, total=1)
        kb_task = progress.add_task("Knowledge base", total=None)
        report = _sync_kb(lambda file: progress.update(
            kb_task, description=f"Knowledge: {file.name}"))
        progress.update(kb_task, total=1, completed=1, description=(
            f"Knowledge: {report.added} new, {report.unchanged} unchanged chunks"))
        rasa_task = progress.add_task("Rasa dialogue model", total=1)
        model = runner.train_rasa(settings, force=force)
        progress.update(rasa_task, description=f"Rasa model {model.name}", completed=1)
    return model


def _sync_kb(progress):  # type: ignore[no-untyped-def]
    import asyncio

    from knowledge.sync import sync_all

    report, _ = asyncio.run(sync_all(get_settings(), progress=progress))
    for name, error in report.failed:
        console.print(f"[yellow]skipped {name}: {error}[/]")
    return report


@kb_app.command("import")
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

    from rich.markup import escape

    from core import db
    from knowledge.articles.flows import FilesImported, import_files
    from knowledge.ingest import ImportReport
    from knowledge.sync import import_into

    settings = get_settings()
    if not path.exists():
        console.print(f"[red]error:[/] {path} does not exist")
        raise typer.Exit(2)
    db.upgrade_database(settings.database_url)

    async def run() -> tuple[FilesImported, ImportReport]:
        from sqlalchemy import select

        from staff.models import Agent

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
                                              queue="auto" if background else None,
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

    from knowledge.ingest import collect_files

    with _progress() as bar:
        task = bar.add_task("importing", total=len(collect_files(path)))

        def step(file: Path) -> None:
            bar.update(task, advance=1, description=f"importing {file.name}")

        articles, others = asyncio.run(run())
    for name, error in [*articles.failed, *others.failed]:
        console.print(f"[yellow]skipped {escape(name)}: {escape(error)}[/]")
    console.print(f"{articles.files} files: {len(articles.created)} new and "
                  f"{len(articles.updated)} changed articles published, "
                  f"{len(articles.unchanged)} unchanged; {others.files} other files indexed")
    if articles.tasks:
        console.print(f"{len(articles.tasks)} indexing tasks queued for the workers")
    if articles.failed or others.failed:
        raise typer.Exit(1)


@app.command()
def train(force: Annotated[bool, typer.Option(help="Retrain even if nothing changed.")] = False
          ) -> None:
    """Train the NLU and Rasa models that are missing or out of date."""
    _build(force)


@app.command()
def run() -> None:
    """Train what is missing, start NLU, actions, Rasa and the API; Ctrl-C stops them all."""
    from web import runner

    configure_logging()
    settings = get_settings()
    t0 = time.monotonic()
    model = _build()
    from staff.bootstrap import ensure_demo_staff

    staff = ensure_demo_staff(settings)
    supervisor = runner.Supervisor(runner.services(settings, model))

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        with _progress() as progress:
            task = progress.add_task("Starting services", total=len(supervisor.services))
            supervisor.start_all(lambda s, took: progress.update(
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


def _nlu_errors() -> contextlib.AbstractContextManager:
    @contextlib.contextmanager
    def guard():  # type: ignore[no-untyped-def]
        from core.errors import ParleyError

        try:
            yield
        except ParleyError as exc:
            console.print(f"[red]error:[/] {exc.message}")
            raise typer.Exit(2) from exc
    return guard()


@nlu_app.command("train")
def nlu_train(
    data: Annotated[Path, typer.Option(help="Rasa NLU YAML or CSV (text,intent) file or folder.")],
    out: Annotated[Path | None, typer.Option(help="Registry folder (default: models/nlu).")] = None,
    preset: Annotated[str, typer.Option(help="demo, fast (CI) or full (benchmarks).")] = "",
    base: Annotated[str | None, typer.Option(help="e5-small or a transformers folder.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    layers: Annotated[int | None, typer.Option(help="Keep the first N encoder layers.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    members: Annotated[int | None, typer.Option(help="Train N seeds and serve their average "
                                                     "(more accurate, N times slower).")] = None,
    validation: Annotated[Path | None, typer.Option(help="Held-out data (default: a "
                                                         "stratified share of DATA).")] = None,
    activate: Annotated[bool, typer.Option(help="Activate if it passes the floor.")] = True,
    floor: Annotated[float | None, typer.Option(help="Minimum accuracy to activate.")] = None,
) -> None:
    """Fine-tune an NLU model version (resumes an interrupted run) and activate it if its
    evaluation passes the floor."""
    from nlu.registry import Registry
    from nlu.train import resolve_config, train

    settings = get_settings()
    target = out or settings.nlu_model_dir
    with _nlu_errors():
        config = resolve_config(preset or settings.nlu_preset,
                                base=base or settings.nlu_base_model, epochs=epochs,
                                layers=layers, seed=seed, members=members,
                                threads=settings.nlu_train_threads or None)
        with _progress() as progress:
            task = progress.add_task("training", total=None)
            version = train(data, target, config=config, validation=validation,
                            activate=activate, reuse=False,
                            floor=settings.nlu_floor if floor is None else floor,
                            base_cache=settings.nlu_base_cache,
                            progress=lambda phase, done, total: progress.update(
                                task, description=phase, completed=done, total=total))
    meta = Registry(target).metadata(version)
    console.print(f"trained {target / version}")
    console.print_json(json.dumps({"metrics_on": meta["metrics_on"], **meta["metrics"],
                                   "serving": meta["serving"]["format"]}))
    state = "active" if Registry(target).active_version() == version else "not activated"
    console.print(f"{version}: {state}")


@nlu_app.command("eval")
def nlu_eval(
    model: Annotated[Path, typer.Option(help="A version folder, or a registry (its active "
                                             "version).")],
    data: Annotated[Path, typer.Option(help="Labelled YAML or CSV file or folder.")],
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here, with a "
                                                     "confusion-matrix PNG beside it.")] = None,
) -> None:
    """Evaluate a model: accuracy, macro-F1, out-of-scope precision/recall, entity F1."""
    from nlu.data import load_examples
    from nlu.evaluate import evaluate, write_report
    from nlu.registry import Registry
    from nlu.runtime import OnnxJointModel

    with _nlu_errors():
        directory = model if (model / "metadata.json").exists() else Registry(model).active_dir()
        result = evaluate(OnnxJointModel(directory, threads=None), load_examples(data))
    result["model"] = str(directory)
    shown = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall",
             "entity_f1")
    for key in shown:
        value = result[key]
        console.print(f"{key:>18}: " + ("n/a" if value is None else f"{value:.4f}"))
    if report:
        png = write_report(result, report)
        console.print(f"report: {report}  confusion matrix: {png}")


@nlu_app.command("parse")
def nlu_parse(text: str, model: Annotated[Path | None, typer.Option(
        help="A registry (its active version) or one version's folder.")] = None) -> None:
    """Parse TEXT and print Rasa's parse format."""
    from nlu.service import NLUService

    with _nlu_errors():
        service = NLUService(model or get_settings().nlu_model_dir)
        service.warm_up()
        console.print_json(json.dumps(service.parse(text), ensure_ascii=False))


@nlu_app.command("versions")
def nlu_versions(model: Annotated[Path | None, typer.Option()] = None) -> None:
    """List model versions with their metrics; marks the active one and the canary."""
    from nlu.registry import Registry

    registry = Registry(model or get_settings().nlu_model_dir)
    active, canary = registry.active_version(), registry.canary()
    for version in registry.versions():
        meta = registry.metadata(version)
        metrics = meta.get("metrics") or {}
        mark = "active" if version == active else (
            f"canary {canary['share']:.0%}" if canary and canary["version"] == version else "")
        accuracy = metrics.get("accuracy")
        console.print(f"{version}  {meta.get('kind', '?'):<12} accuracy "
                      f"{'n/a' if accuracy is None else f'{accuracy:.3f}'}  {mark}")


@nlu_app.command("activate")
def nlu_activate(version: str, force: Annotated[bool, typer.Option(
        help="Activate even below the evaluation floor.")] = False) -> None:
    """Activate VERSION (the running NLU service swaps to it without dropping requests)."""
    from nlu.admin import activate

    with _nlu_errors():
        activate(get_settings(), version, force=force)
    console.print(f"active: {version}")


@nlu_app.command("rollback")
def nlu_rollback() -> None:
    """Re-activate the version that was active before the current one."""
    from nlu.admin import rollback

    with _nlu_errors():
        console.print(f"active: {rollback(get_settings())}")


@nlu_app.command("canary")
def nlu_canary(
    version: Annotated[str | None, typer.Argument()] = None,
    share: Annotated[float, typer.Option(help="Share of conversations, 0..1.")] = 0.1,
    off: Annotated[bool, typer.Option(help="Stop the canary.")] = False,
) -> None:
    """Let VERSION take a share of conversations beside the active version."""
    from nlu.admin import clear_canary, set_canary

    with _nlu_errors():
        if off or version is None:
            clear_canary(get_settings())
            console.print("canary stopped")
        else:
            set_canary(get_settings(), version, share)
            console.print(f"canary: {version} takes {share:.0%} of conversations")


@agents_app.command("create")
def agents_create(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="agent or admin")] = "agent",
    skills: Annotated[str, typer.Option(help="comma-separated")] = "",
    languages: Annotated[str, typer.Option(help="comma-separated")] = "en",
    max_concurrent: Annotated[int, typer.Option()] = 3,
) -> None:
    """Create a staff account; the password is read from the prompt (or PARLEY_NEW_PASSWORD)."""
    import os

    from pydantic import ValidationError

    from core.errors import ParleyError
    from staff.bootstrap import create_agent
    from staff.schemas import AgentCreate

    password = os.environ.get("PARLEY_NEW_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    try:
        agent = create_agent(get_settings(), AgentCreate(
            email=email, name=name, password=password, role=role,  # type: ignore[arg-type]
            skills=[s for s in skills.split(",") if s],
            languages=[s for s in languages.split(",") if s], max_concurrent=max_concurrent))
    except (ValidationError, ParleyError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"created {agent.role} {agent.email} (id {agent.id})")


@app.command()
def worker(concurrency: Annotated[int, typer.Option(help="Celery worker processes.")] = 1) -> None:
    """Run the background worker: Celery when PARLEY_BROKER_URL is set, else the embedded queue."""
    from workers.service import run_worker

    configure_logging()
    run_worker(get_settings(), concurrency=concurrency)


@kafka_app.command("consume")
def kafka_consume(assign: Annotated[bool, typer.Option(
        help="Read every partition without joining the consumer group.")] = False) -> None:
    """Read knowledge.changes into the task queue until Ctrl-C."""
    from workers.service import consume_changes

    configure_logging()
    consume_changes(get_settings(), assign=assign)


@tasks_app.command("dead")
def tasks_dead() -> None:
    """List dead-lettered tasks."""
    from workers.queue import get_queue

    queue = get_queue(get_settings())
    try:
        for d in queue.dead_letters():
            console.print(f"{d['id']}  {d['task']}  attempts={d['attempts']}  {d['error']}")
    finally:
        queue.close()


@tasks_app.command("retry")
def tasks_retry(letter_id: str) -> None:
    """Queue a dead-lettered task again."""
    from workers.queue import get_queue

    queue = get_queue(get_settings())
    try:
        queue.retry_dead_letter(letter_id)
    finally:
        queue.close()


@app.command()
def chat(
    url: Annotated[str | None, typer.Option(help="API base URL.")] = None,
    locale: Annotated[str, typer.Option(help="en or zh")] = "en",
) -> None:
    """Chat with the running Parley from the terminal (Ctrl-D or /quit to leave)."""
    import httpx

    base = (url or get_settings().public_url).rstrip("/")
    with httpx.Client(base_url=base, timeout=60) as client:
        try:
            created = client.post("/api/v1/conversations", json={"locale": locale})
        except httpx.HTTPError as exc:
            console.print(f"[red]Parley is not reachable at {base}[/] ({type(exc).__name__}). "
                          "Start it with `make run`.")
            raise typer.Exit(1) from exc
        created.raise_for_status()
        conversation = created.json()
        headers = {"Authorization": f"Bearer {conversation['token']}"}
        console.print(f"[dim]conversation {conversation['id']}: type /quit to leave[/]")
        while True:
            try:
                text = console.input("[bold cyan]you> [/]")
            except (EOFError, KeyboardInterrupt):
                break
            if text.strip() in {"/quit", "/exit"}:
                break
            if not text.strip():
                continue
            response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                                   headers=headers,
                                   json={"text": text, "client_message_id": uuid.uuid4().hex})
            body = response.json()
            if response.status_code != 200:
                console.print(f"[red]{body['error']['code']}[/]: {body['error']['message']}")
                continue
            for message in body["messages"]:
                if message["role"] == "customer":
                    continue
                console.print(f"[bold green]{message['role']}> [/]{message['text']}")
                for button in message.get("buttons") or []:
                    console.print(f"   [dim]\\[{button['title']}: {button['payload']}][/]")
            if body["state"] != "bot":
                console.print(f"[yellow]conversation state: {body['state']}[/]")


if __name__ == "__main__":
    sys.exit(app())
