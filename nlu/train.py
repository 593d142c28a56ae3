"""Train an NLU model version from training data into the registry."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nlu.classifier import EmbeddingIntentModel
from nlu.data import Example, data_hash, load_examples
from nlu.registry import Registry

logger = logging.getLogger(__name__)
GAZETTEER_FILE = "gazetteer.json"
GAZETTEER_ENTITIES = {"product"}  # pattern entities are matched by regex, not by list


def gazetteer_from(examples: list[Example]) -> dict[str, str]:
    values: dict[str, str] = {}
    for example in examples:
        for ent in example.entities:
            if ent.entity in GAZETTEER_ENTITIES:
                values[example.text[ent.start:ent.end].lower()] = ent.entity
    return values


def cross_validated_accuracy(examples: list[Example], features: np.ndarray,
                             folds: int = 5) -> float | None:
    from sklearn.model_selection import StratifiedKFold

    labels = [e.intent for e in examples]
    if min(labels.count(label) for label in set(labels)) < folds:
        return None
    correct = 0
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=13).split(
            labels, labels):
        model = EmbeddingIntentModel.train([examples[i] for i in train_idx],
                                           features=features[train_idx])
        probs = model.predict_proba_features(features[test_idx])
        predicted = [model.labels[j] for j in probs.argmax(axis=1)]
        correct += sum(p == labels[i] for p, i in zip(predicted, test_idx, strict=True))
    return correct / len(examples)


def train(
    data: str | Path,
    registry_root: Path,
    *,
    activate: bool = True,
    reuse: bool = True,
    progress: Callable[[str], None] = lambda step: None,
) -> str:
    """Train a version from ``data``; return its name. Reuses a version trained on identical
    data."""
    registry = Registry(registry_root)
    progress("loading data")
    examples = load_examples(data)
    digest = data_hash(examples)
    if reuse and (existing := registry.find_by_data_hash(digest, EmbeddingIntentModel.kind)):
        if activate:
            registry.activate(existing)
        return existing
    staging = registry.staging_dir()
    try:
        progress("embedding examples")
        embedder = EmbeddingIntentModel().embedder
        features = embedder.embed([e.text for e in examples], query=True)
        progress("cross-validating")
        cv = cross_validated_accuracy(examples, features)
        progress("training intent model")
        model = EmbeddingIntentModel.train(examples, features=features, embedder=embedder)
        model.save(staging)
        (staging / GAZETTEER_FILE).write_text(
            json.dumps(gazetteer_from(examples), ensure_ascii=False, indent=0))
        intents = sorted(set(model.labels))
        version = registry.publish(staging, {
            "kind": EmbeddingIntentModel.kind,
            "data_hash": digest,
            "data_path": str(data),
            "examples": len(examples),
            "intents": intents,
            "metrics": {"cv_accuracy": cv},
        })
    except BaseException:
        registry.discard(staging)
        raise
    if activate:
        registry.activate(version)
    logger.info("trained NLU version %s on %d examples", version, len(examples))
    return version
