"""Evaluate a model version on labelled data: intent accuracy and macro-F1, out-of-scope
precision and recall, entity span F1, and a confusion matrix.

Out-of-scope: an example whose gold intent is the model's out-of-scope class (or ``oos`` /
``out_of_scope``) is out of scope; a prediction is out of scope when the model rejects it or
picks that class. Accuracy counts a correct rejection as correct; ``in_scope_accuracy`` (the
CLINC150 measure) counts a wrongly rejected in-scope example as wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from nlu.data import Example
from nlu.finetune import OOS_NAMES
from nlu.patterns import combine, pattern_spans
from nlu.runtime import OnnxJointModel, Prediction

OOS = "<out_of_scope>"


def _canonical(intent: str, oos_names: set[str]) -> str:
    return OOS if intent in oos_names else intent


def entity_f1(examples: list[Example], predicted: list[set[tuple[str, int, int]]]) -> float | None:
    gold = [{(e.entity, e.start, e.end) for e in ex.entities} for ex in examples]
    n_gold = sum(len(g) for g in gold)
    if n_gold == 0:
        return None
    n_pred = sum(len(p) for p in predicted)
    hits = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def predicted_entities(text: str, prediction: Prediction,
                       known: set[str]) -> set[tuple[str, int, int]]:
    """Model spans combined with pattern spans as the service does, limited to entity types the
    data knows (so a benchmark is not charged for Parley's own pattern types)."""
    spans = combine([s for s in pattern_spans(text) if s.entity in known], prediction.spans)
    return {(s.entity, s.start, s.end) for s in spans if s.entity in known}


def evaluate(model: OnnxJointModel, examples: list[Example]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, f1_score

    predictions = model.predict([e.text for e in examples])
    oos_names = set(OOS_NAMES) | ({model.oos_label} if model.oos_label else set())
    gold = [_canonical(e.intent, oos_names) for e in examples]
    pred = [OOS if (p.rejected or p.intent in oos_names) else p.intent for p in predictions]
    gold_arr, pred_arr = np.array(gold), np.array(pred)
    is_oos = gold_arr == OOS
    said_oos = pred_arr == OOS
    top1 = np.array([_canonical(p.ranking[0][0], oos_names) for p in predictions])
    report: dict[str, Any] = {
        "examples": len(examples),
        "accuracy": float((gold_arr == pred_arr).mean()),
        # the most probable intent, no threshold (the usual figure for closed-set benchmarks)
        "top1_accuracy": float((gold_arr == top1).mean()),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "in_scope_accuracy": float((gold_arr == pred_arr)[~is_oos].mean())
        if (~is_oos).any() else None,
        "oos_examples": int(is_oos.sum()),
        "oos_precision": None,
        "oos_recall": None,
    }
    if is_oos.any():
        report["oos_recall"] = float((said_oos & is_oos).sum() / is_oos.sum())
        report["oos_precision"] = float((said_oos & is_oos).sum() / said_oos.sum()) \
            if said_oos.any() else 0.0
    known = {ent.entity for ex in examples for ent in ex.entities}
    entity_predictions = [predicted_entities(ex.text, p, known)
                          for ex, p in zip(examples, predictions, strict=True)]
    report["entity_f1"] = entity_f1(examples, entity_predictions)
    report["entity_examples"] = sum(len(ex.entities) for ex in examples)
    labels = sorted(set(gold) | set(pred))
    report["confusion_labels"] = labels
    report["confusion"] = confusion_matrix(gold, pred, labels=labels).tolist()
    errors = Counter((g, p) for g, p in zip(gold, pred, strict=True) if g != p)
    report["top_confusions"] = [{"gold": g, "predicted": p, "count": n}
                                for (g, p), n in errors.most_common(10)]
    return report


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write the JSON report and a confusion-matrix PNG beside it; return the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    png = path.with_suffix(".confusion.png")
    confusion_png(report["confusion"], report["confusion_labels"], png)
    return png


def confusion_png(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(5.0, min(40.0, 0.22 * len(labels) + 3))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6 if len(labels) > 40 else 8)
    ax.set_yticks(range(len(labels)), labels, fontsize=6 if len(labels) > 40 else 8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Intent confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
