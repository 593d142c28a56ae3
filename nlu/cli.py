"""``parley nlu``: train, evaluate, try and activate NLU model versions.

An NLU error (bad data, an unknown version, a model below the floor) is one line and exit
code 2; nothing here imports torch until a command needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.cli import console, errors, progress
from core.config import get_settings

app = typer.Typer(help="Train and try NLU models.")


@app.command("train")
def nlu_train(
    data: Annotated[Path | None, typer.Option(help="Rasa NLU YAML or CSV (text,intent) file or "
                                              "folder (default: the project's NLU data).")] = None,
    out: Annotated[Path | None, typer.Option(help="Registry folder (default: the project's "
                                                  ".parley/models/nlu).")] = None,
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
    from nlu.train import resolve_config, train, training_data

    settings = get_settings()
    target = out or settings.nlu_model_dir
    with errors():
        config = resolve_config(preset or settings.nlu_preset,
                                base=base or settings.nlu_base_model, epochs=epochs,
                                layers=layers, seed=seed, members=members,
                                threads=settings.nlu_train_threads or None)
        with progress() as bar:
            task = bar.add_task("training", total=None)
            version = train(data or training_data(settings), target, config=config,
                            validation=validation,
                            activate=activate, reuse=False,
                            floor=settings.nlu_floor if floor is None else floor,
                            base_cache=settings.nlu_base_cache,
                            progress=lambda phase, done, total: bar.update(
                                task, description=phase, completed=done, total=total))
    meta = Registry(target).metadata(version)
    console.print(f"trained {target / version}")
    console.print_json(json.dumps({"metrics_on": meta["metrics_on"], **meta["metrics"],
                                   "serving": meta["serving"]["format"]}))
    state = "active" if Registry(target).active_version() == version else "not activated"
    console.print(f"{version}: {state}")


@app.command("eval")
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

    with errors():
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


@app.command("parse")
def nlu_parse(text: str, model: Annotated[Path | None, typer.Option(
        help="A registry (its active version) or one version's folder.")] = None) -> None:
    """Parse TEXT and print Rasa's parse format."""
    from nlu.service import NLUService, project_options

    with errors():
        settings = get_settings()
        service = NLUService(model or settings.nlu_model_dir,
                             **project_options(settings.project))
        service.warm_up()
        console.print_json(json.dumps(service.parse(text), ensure_ascii=False))


@app.command("versions")
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


@app.command("activate")
def nlu_activate(version: str, force: Annotated[bool, typer.Option(
        help="Activate even below the evaluation floor.")] = False) -> None:
    """Activate VERSION (the running NLU service swaps to it without dropping requests)."""
    from nlu.admin import activate

    with errors():
        activate(get_settings(), version, force=force)
    console.print(f"active: {version}")


@app.command("rollback")
def nlu_rollback() -> None:
    """Re-activate the version that was active before the current one."""
    from nlu.admin import rollback

    with errors():
        console.print(f"active: {rollback(get_settings())}")


@app.command("canary")
def nlu_canary(
    version: Annotated[str | None, typer.Argument()] = None,
    share: Annotated[float, typer.Option(help="Share of conversations, 0..1.")] = 0.1,
    off: Annotated[bool, typer.Option(help="Stop the canary.")] = False,
) -> None:
    """Let VERSION take a share of conversations beside the active version."""
    from nlu.admin import clear_canary, set_canary

    with errors():
        if off or version is None:
            clear_canary(get_settings())
            console.print("canary stopped")
        else:
            set_canary(get_settings(), version, share)
            console.print(f"canary: {version} takes {share:.0%} of conversations")
