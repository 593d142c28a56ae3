"""Calibration on held-out data: how far a served model's probabilities can be trusted.

    fit_temperature     the softmax temperature that minimises validation log-loss
    choose_thresholds   the out-of-scope thresholds: top in-scope probability, and similarity
                        to the nearest in-scope intent centroid
    calibrate           both, and the centroids, measured on the model exactly as it serves
                        (int8 where that was kept), written into its folder

Without validation examples of known intents the model keeps the temperature and thresholds
it was exported with; the centroids are written either way.
"""

from __future__ import annotations

import math

import numpy as np

from nlu.data import Example
from nlu.export import FitResult, infer, write_heads
from nlu.runtime import CENTROIDS_FILE, OnnxJointModel

MIN_OOS_FOR_BALANCE = 20  # fewer out-of-scope validation examples: too few to trade against


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood."""
    best_t, best_nll = 1.0, math.inf
    for t in np.exp(np.linspace(math.log(0.2), math.log(10.0), 80)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -log_probs[np.arange(len(targets)), targets].mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


def choose_thresholds(scores: np.ndarray, similarity: np.ndarray | None, correct: np.ndarray,
                      is_oos: np.ndarray, default: float = 0.3) -> tuple[float, float]:
    """Out-of-scope thresholds on the top in-scope probability and on the similarity to the
    nearest in-scope intent centroid (-1 disables the latter).

    With enough out-of-scope validation examples: the pair maximising the mean of in-scope
    accuracy (a rejected in-scope example counts as wrong) and out-of-scope recall. Otherwise:
    the highest probability threshold that rejects at most 2% of correctly classified
    validation examples, and no similarity threshold."""
    if len(scores) == 0:
        return default, -1.0
    grid = np.linspace(0.05, 0.95, 91)
    if is_oos.sum() >= MIN_OOS_FOR_BALANCE and (~is_oos).any():
        sim_grid = [-1.0]
        if similarity is not None:
            sim_grid += list(np.quantile(similarity[~is_oos], np.linspace(0.0, 0.2, 41)))
        accepted_p = scores[None, :] >= grid[:, None]  # [taus, examples]
        best, best_value = (default, -1.0), -1.0
        for sim_tau in sim_grid:
            accepted = accepted_p if similarity is None or sim_tau < 0 \
                else accepted_p & (similarity >= sim_tau)[None, :]
            in_acc = (accepted & correct[None, :])[:, ~is_oos].mean(axis=1)
            recall = (~accepted)[:, is_oos].mean(axis=1)
            value = (in_acc + recall) / 2
            i = int(value.argmax())
            if value[i] > best_value + 1e-9:
                best, best_value = (float(grid[i]), float(sim_tau)), float(value[i])
        return best
    good = np.sort(scores[correct & ~is_oos])
    if len(good) == 0:
        return default, -1.0
    return float(min(0.5, max(0.05, good[int(len(good) * 0.02)] - 1e-6))), -1.0


def calibrate(result: FitResult, served: OnnxJointModel, train: list[Example],
              val: list[Example]) -> None:
    """Intent centroids of ``train``, then temperature and out-of-scope thresholds from
    ``val``, all measured on ``served``; sets them on ``result`` and rewrites heads.json."""
    label_index = {label: i for i, label in enumerate(result.labels)}
    # intent centroids of the training examples (unit vectors), for out-of-scope similarity
    vectors = infer(served, [e.text for e in train])[1]
    centroids = np.zeros((len(result.labels), vectors.shape[1]), dtype=np.float32)
    for label, i in label_index.items():
        rows = [k for k, e in enumerate(train) if e.intent == label]
        if rows and label != result.oos_label:
            mean = vectors[rows].mean(axis=0)
            centroids[i] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    np.save(result.directory / CENTROIDS_FILE, centroids)
    served.centroids = centroids
    known = [e for e in val if e.intent in label_index]
    if known:
        targets = np.array([label_index[e.intent] for e in known], dtype=np.int64)
        logits, vectors = infer(served, [e.text for e in known])
        result.temperature = fit_temperature(logits, targets)
        served.temperature = result.temperature
        scores, predicted = served.in_scope(logits)
        similarity = served.similarity(vectors)
        is_oos = np.array([e.intent == result.oos_label for e in known])
        correct = np.array([result.labels[p] == e.intent
                            for p, e in zip(predicted, known, strict=True)])
        result.threshold, result.similarity_threshold = choose_thresholds(
            scores, similarity, correct, is_oos)
    write_heads(result, max_length=served.max_length, pad_id=served.pad_id)
