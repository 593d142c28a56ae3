"""``parley kb``: the knowledge base from the command line.

``kb import`` publishes articles through the workers like the editor does. In the foreground
it waits until they are indexed, working the embedded queue itself unless another process
does; with ``--background`` it returns once they are queued. It exits 2 when the path is
missing or ``--as`` names no admin, and 1 when some files (or articles) were skipped.

``kb eval`` measures the answers on a knowledge base of its own, in a temporary folder
(``knowledge.evaluation``); it exits 2, with one ``error:`` line, when a path is missing or a
line of the questions file is malformed.

``kb train-scorer`` trains the learned answer scorer (``knowledge.reader``) on a knowledge base
and questions with known answers, in the same throwaway way.

``kb train-injection`` trains the learned injection detector (``knowledge.instructions``) on
the tune split of ``data/injection`` and of the public articles in ``../shared/datasets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import console, errors, fail, progress, staged_progress
from core.config import get_settings

app = typer.Typer(help="The knowledge base: documents, FAQs and the company graph.")


@app.command("import")
def kb_import(
    path: Annotated[Path | None, typer.Argument(
        help="A file or folder (default: the project's kb/).")] = None,
    as_email: Annotated[str | None, typer.Option(
        "--as", help="Email of the admin the editor's history names.")] = None,
    background: Annotated[bool, typer.Option(
        help="Hand the indexing to the workers instead of doing it now.")] = False,
) -> None:
    """Import a file or folder into the project's knowledge base.

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
    path = path or settings.kb_dir
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


@app.command("eval")
def kb_eval(
    kb: Annotated[list[Path], typer.Option(
        "--kb", help="A file or folder, as `kb import` takes; repeat for more.")],
    questions: Annotated[Path, typer.Option(
        help="JSONL: {question, answers: [...] ([] = unanswerable), lang?, source?}.")],
    report: Annotated[Path | None, typer.Option(
        help="Write the figures here, and each question's result to <name>.questions.jsonl."
    )] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Ask only the first N.")] = None,
) -> None:
    """Answer a questions file from a throwaway knowledge base and report how well it went.

    The knowledge base is imported into a temporary folder, never the live one; every
    question goes through retrieval, the configured generators and the gate.
    """
    import asyncio

    from rich.markup import escape
    from rich.table import Table

    from knowledge.evaluation import evaluate
    from knowledge.evaluation_questions import load_questions

    for path in kb:
        if not path.exists():
            fail(f"{path} does not exist")
    if report is not None and not report.parent.is_dir():
        fail(f"{report.parent} is not a folder")
    with errors():
        asked = load_questions(questions)
        with staged_progress() as step:
            result = asyncio.run(evaluate(kb, asked, settings=get_settings(), limit=limit,
                                          progress=step))
    for name, error in result.import_failed:
        console.print(f"[yellow]skipped {escape(name)}: {escape(error)}[/]")
    figures = result.figures()
    table = Table("figure", "value", title=f"{result.n} questions, {result.kb_chunks} chunks")
    shares = ("right", "wrong", "abstained_answerable", "abstained_unanswerable", "cited",
              "source_top1", "recall_at_5")
    for key in ("answerable", "unanswerable", *shares, "p50_ms", "p95_ms",
                "import_chunks_per_s"):
        value = figures[key]
        table.add_row(key, "–" if value is None else f"{value:.1%}" if key in shares
                      else str(value))
    console.print(table)
    if report is not None:
        console.print(f"report: {report}; per question: {result.write(report)}")


@app.command("train-scorer")
def kb_train_scorer(
    kb: Annotated[list[Path], typer.Option(
        "--kb", help="A file or folder, as `kb import` takes; repeat for more.")],
    questions: Annotated[Path, typer.Option(
        help="JSONL as `kb eval` takes: {question, answers: [...] ([] = unanswerable), lang?, "
             "source?}.")],
    out: Annotated[Path | None, typer.Option(
        help="Where to write it (default: PARLEY_ANSWER_SCORER, else "
             "models/scorer/scorer.pkl).")] = None,
    max_drop: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Right answers (share, in any language) the threshold may give "
                               "up to abstain on unanswerable questions.")] = 0.05,
) -> None:
    """Train the learned answer scorer on questions with known answers.

    The knowledge base is imported into a temporary folder, as `kb eval` does; each question is
    asked up to the candidate sentences, which are labelled by whether they state an answer.
    The threshold and the validation figures come from 5-fold validation by question. Keep
    questions apart to measure with `kb eval` afterwards.
    """
    import asyncio
    import json

    from knowledge.evaluation_questions import load_questions
    from knowledge.reader import fit, mine

    for path in kb:
        if not path.exists():
            fail(f"{path} does not exist")
    settings = get_settings()
    target = out or settings.answer_scorer_path
    with errors():
        asked = load_questions(questions)
        with staged_progress() as step:
            mined = asyncio.run(mine(kb, asked, settings=settings, progress=step))
        scorer, figures = fit(mined, folds=min(5, max(2, len(asked))), max_drop=max_drop)
    scorer.about["questions_file"] = str(questions)
    scorer.save(target)
    console.print_json(json.dumps({"out": str(target), **figures}))


@app.command("train-injection")
def kb_train_injection(
    out: Annotated[Path | None, typer.Option(
        help="Where to write it (default: PARLEY_INJECTION_MODEL, else "
             "models/injection/detector.npz).")] = None,
    datasets: Annotated[Path | None, typer.Option(
        help="The public datasets (default: ../shared/datasets); where they are missing, "
             "the corpus's own benign texts are the only benign examples.")] = None,
) -> None:
    """Train the injection detector on the tune split of data/injection and real articles.

    A support-vector machine over the e5 embedding of each sentence, judged after the
    patterns; its thresholds keep it to about 0.2% of real-article sentences and 2% of the
    hand-written hard negatives (5-fold validation on the tune split). About two minutes on two
    cores. `bench/injection_detection.py` measures it on the report split.
    """
    import json

    from knowledge.factory import embedder
    from knowledge.injection_corpus import DATASETS_DIR
    from knowledge.injection_training import context_paragraphs, fit, training_set

    settings = get_settings()
    target = out or settings.injection_model_path
    source = datasets or DATASETS_DIR
    with errors(), staged_progress() as step:
        examples = training_set(datasets=source)
        model, figures = fit(examples, embedder(settings),
                             context=context_paragraphs(datasets=source), progress=step)
    model.save(target)
    console.print_json(json.dumps({"out": str(target), **figures}))
