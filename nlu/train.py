"""Train an NLU model version from training data into the registry.

The version is built in a staging folder and published atomically; it is activated only when
its evaluation passes the floor. A failure of any kind leaves the active model untouched.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.config import ROOT, Settings
from core.project import project_of
from nlu.data import Example, data_hash, load_examples
from nlu.errors import NLUInvalid
from nlu.finetune import PRESETS, Progress, TrainConfig, fit, split_validation, with_overrides
from nlu.registry import Registry

logger = logging.getLogger(__name__)
CORE_DATA = ROOT / "data" / "nlu"  # the built-in core intents, one file per language
GAZETTEER_FILE = "gazetteer.json"
GAZETTEER_ENTITIES = {"product"}  # pattern entities are matched by regex, not by list
KIND = "transformer"
METRIC_KEYS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall",
               "entity_f1", "examples")


def gazetteer_from(examples: list[Example]) -> dict[str, str]:
    values: dict[str, str] = {}
    for example in examples:
        for ent in example.entities:
            if ent.entity in GAZETTEER_ENTITIES:
                values[example.text[ent.start:ent.end].lower()] = ent.entity
    return values


def resolve_config(preset: str = "demo", **overrides: Any) -> TrainConfig:
    if preset not in PRESETS:
        raise NLUInvalid(f"unknown training preset {preset!r}: use one of "
                                f"{', '.join(sorted(PRESETS))}", code="nlu_unknown_preset")
    config = with_overrides(PRESETS[preset], **overrides)
    if config.members < 1 or config.epochs < 1:
        raise NLUInvalid("members and epochs must be at least 1", code="nlu_invalid_config")
    return config


def train(
    data: str | Path | Sequence[str | Path],
    registry_root: Path,
    *,
    config: TrainConfig | None = None,
    validation: str | Path | None = None,
    activate: bool = True,
    floor: float = 0.0,
    reuse: bool = True,
    base_cache: Path | None = None,
    progress: Progress = lambda phase, done, total: None,
) -> str:
    """Train a version from ``data``; return its name. Reuses a version trained on identical data
    with the identical configuration. Activates it when ``activate`` and its accuracy (on the
    validation data, or on the training data when there is too little to hold any out) reaches
    ``floor``."""
    config = config or PRESETS["demo"]
    registry = Registry(registry_root)
    progress("loading data", 0, 1)
    examples = load_examples(data)
    digest = data_hash(examples)
    key = config.key(digest)
    if reuse and (existing := registry.find(key=key)):
        if activate:
            activate_if_passing(registry, existing, floor)
        return existing
    if validation is not None:
        train_examples, val_examples = examples, load_examples(validation)
    else:
        train_examples, val_examples = split_validation(examples, config.val_fraction,
                                                        config.seed)
    workdir = registry.root / ".work" / key  # checkpoints: a rerun resumes here
    staging = registry.staging_dir()
    try:
        result = fit(train_examples, val_examples, config,
                     cache=base_cache or registry.root.parent / "base", workdir=workdir,
                     progress=progress)
        for item in result.directory.iterdir():
            shutil.copy2(item, staging / item.name)
        (staging / GAZETTEER_FILE).write_text(
            json.dumps(gazetteer_from(examples), ensure_ascii=False, indent=0))
        progress("evaluating", 0, 1)
        metrics, measured_on = _evaluate(staging, val_examples or train_examples,
                                         "validation" if val_examples else "training")
        version = registry.publish(staging, {
            "kind": KIND,
            "base_model": config.base,
            "config": asdict(config),
            "training_key": key,
            "data_hash": digest,
            "data_path": str(data) if isinstance(data, (str, Path)) else
                         ", ".join(str(p) for p in data),
            "examples": len(examples),
            "intents": result.labels,
            "entities": sorted({t[2:] for t in result.tags if t != "O"}),
            "oos_label": result.oos_label,
            "threshold": result.threshold,
            "temperature": result.temperature,
            "serving": result.serving,
            "metrics": metrics,
            "metrics_on": measured_on,
        })
        progress("evaluating", 1, 1)
    except BaseException:
        registry.discard(staging)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    logger.info("trained NLU version %s on %d examples", version, len(examples))
    if activate:
        activate_if_passing(registry, version, floor)
    return version


def _evaluate(directory: Path, examples: list[Example], on: str) -> tuple[dict[str, Any], str]:
    from nlu.evaluate import evaluate
    from nlu.runtime import OnnxJointModel

    report = evaluate(OnnxJointModel(directory, threads=None), examples)
    return {k: report[k] for k in METRIC_KEYS}, on


def activate_if_passing(registry: Registry, version: str, floor: float) -> bool:
    accuracy = (registry.metadata(version).get("metrics") or {}).get("accuracy")
    if accuracy is None or accuracy < floor:
        if registry.active_version() is None:  # nothing better to serve: a bot must answer
            logger.warning("NLU version %s activated although its accuracy %s is below the "
                           "floor %.3f: it is the project's first model; add examples",
                           version, accuracy, floor)
            registry.activate(version)
            return True
        logger.warning("NLU version %s not activated: accuracy %s is below the floor %.3f",
                       version, accuracy, floor)
        return False
    if registry.active_version() != version:
        registry.activate(version)
    return True


def training_data(settings: Settings) -> list[Path]:
    """What a project's NLU trains on: the core intents in the project's languages, then the
    project's own ``nlu/`` (when it has one)."""
    languages = project_of(settings.project).languages
    files = [CORE_DATA / f"{language}.yml" for language in languages]
    if settings.nlu_data_dir.exists():
        files.append(settings.nlu_data_dir)
    return files


def _configured(settings: Settings, **overrides: Any) -> TrainConfig:
    """The configuration the settings ask for: ``train_for_settings`` trains with it and
    ``needs_training`` looks for its key."""
    return resolve_config(settings.nlu_preset, base=settings.nlu_base_model,
                          threads=settings.nlu_train_threads or None, **overrides)


def train_for_settings(settings: Settings,
                       progress: Callable[[str, int, int], None] = lambda phase, done, total: None,
                       **overrides: object) -> str:
    """Train (or reuse) the NLU version for the project's data and the configured preset."""
    return train(training_data(settings), settings.nlu_model_dir,
                 config=_configured(settings, **overrides), floor=settings.nlu_floor,
                 base_cache=settings.nlu_base_cache, progress=progress)


def needs_training(settings: Settings) -> bool:
    """Whether the project's data (or the preset) changed since its last trained version."""
    key = _configured(settings).key(data_hash(load_examples(training_data(settings))))
    return Registry(settings.nlu_model_dir).find(key=key) is None


def has_active_model(settings: Settings) -> bool:
    return Registry(settings.nlu_model_dir).active_version() is not None
