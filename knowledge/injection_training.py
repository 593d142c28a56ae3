"""Training the learned injection detector (``knowledge.instructions``) on the tune split.

The examples are the tune half of ``data/injection`` (attacks in their base form and in the
obfuscations the classifier sees as text: zero-width, full-width, look-alikes, leetspeak, split
in two; spaced letters and base64 are judged decoded, comments are dropped before anything is
judged) and of its hard negatives (and neighbouring pairs of them), plus, from the tune articles
of SQuAD 2.0, CMRC 2018 and Bitext where ``../shared/datasets`` holds them, sentences,
neighbouring pairs, the questions asked of them (Bitext: customers' requests) and titles: short
texts and questions are where a classifier that saw only article sentences goes wrong. Without
the datasets, the hand-written benign texts are the only benign examples. Each example counts
once per form the detector judges it in (``instructions.forms``).

The model is chosen, and its thresholds set, on out-of-fold probabilities (5 folds; an
attack and all its obfuscations stay in one fold, and so do all texts of one real article:
Bitext's answers to one intent are near copies of each other): the threshold is the lowest
probability at which at most ``REAL_FPR`` of real-article sentences and ``HARD_FPR`` of hard
negatives are flagged. The pair threshold is then set in context, on whole paragraphs of tune
articles and runs of hard negatives: the lowest (not under the sentence threshold) at which
judging pairs flags at most ``REAL_PAIR_FPR`` more real sentences and ``HARD_PAIR_FPR`` more
hard negatives.
Last, the pair floor: pairs are judged only next to a sentence at least that suspicious alone,
set so that ``PAIR_FLOOR_SHARE`` of the tune split's split attacks caught only as a pair are
given up for the cost. Of the candidates (``GRID``: regularisation, and the weight of a hard
negative), the one that catches most attacks at its threshold wins.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.injection_corpus import (
    CORPUS_DIR,
    DATASETS_DIR,
    Example,
    attacks,
    available,
    hard_negatives,
    real_paragraphs,
    real_texts,
)
from knowledge.instructions import (
    InstructionModel,
    forms,
    judged_by_model,
    pair_text,
)
from knowledge.safety import matches_patterns
from knowledge.text import split_sentences

logger = logging.getLogger(__name__)
TRAINED_FORMS = ("base", "zero-width", "full-width", "homoglyph", "leet", "split")
REAL_FPR = 0.002
HARD_FPR = 0.02
REAL_PAIR_FPR = 0.001  # what judging neighbouring pairs may add, in context
HARD_PAIR_FPR = 0.01
CONTEXT_SENTENCES = 400
PAIR_FLOOR_SHARE = 0.2  # split attacks given up so that ~90% of neighbours cost nothing
# (the SVM's C, the weight of a hard negative): hard negatives are few among the real texts,
# and they are where the line runs; weighting them up keeps it away from them.
GRID = tuple((c, w) for c in (3.0, 10.0, 30.0) for w in (1.0, 5.0, 20.0))
Progress = Callable[[str, int, int], None]


# How many texts of each unit are read from each real source's tune articles.
REAL_LIMITS = {"sentence": 1200, "pair": 400, "question": 400, "title": 300}


def training_set(*, corpus: Path = CORPUS_DIR, datasets: Path = DATASETS_DIR,
                 limits: dict[str, int] | None = None) -> list[Example]:
    """The tune examples: see the module's docstring. ``limits``: texts per unit and real
    source (default ``REAL_LIMITS``; {} reads none)."""
    found = [e for e in attacks(corpus) if e.split == "tune" and e.obfuscation in TRAINED_FORMS]
    found += [e for e in hard_negatives(corpus, pairs=True) if e.split == "tune"]
    for source in available(datasets):
        for unit, limit in (REAL_LIMITS if limits is None else limits).items():
            found += real_texts(source, split="tune", unit=unit, limit=limit, datasets=datasets)
    return found


def fit(examples: Sequence[Example], embedder: Embedder, *, folds: int = 5,
        grid: Sequence[tuple[float, float]] = GRID,
        context: Sequence[tuple[bool, list[str]]] | None = None,
        progress: Progress | None = None) -> tuple[InstructionModel, dict[str, Any]]:
    """The detector fitted on ``examples``, and the out-of-fold figures it was chosen by;
    its pair threshold is set on ``context`` (``context_paragraphs``)."""
    from sklearn.model_selection import GroupKFold

    started = time.monotonic()
    examples, texts = _forms(examples)
    distinct = list(dict.fromkeys(texts))
    vectors = _embed(embedder, distinct, progress)
    row = {t: i for i, t in enumerate(distinct)}
    x = vectors[[row[t] for t in texts]]
    y = np.asarray([e.attack for e in examples])
    groups = np.unique([e.base for e in examples], return_inverse=True)[1]
    real = np.asarray([not e.attack and e.technique in ("squad", "cmrc", "bitext")
                       for e in examples])
    hard = ~y & ~real
    paired = np.asarray([_paired(e) for e in examples])
    best: tuple[float, tuple[float, float], np.ndarray, np.ndarray] | None = None
    for step, (c, hard_weight) in enumerate(grid):
        weight = np.where(hard, hard_weight, 1.0)
        oof = np.zeros(len(examples))
        for train, test in GroupKFold(n_splits=min(folds, len(set(groups)))).split(x, y, groups):
            svm = _svm(c).fit(x[train], y[train], sample_weight=weight[train])
            oof[test] = svm.decision_function(x[test])
        probability = _platt(oof, y)(oof)
        threshold = _lowest(probability, [(real & ~paired, REAL_FPR),
                                          (hard & ~paired, HARD_FPR)])
        recall = float((probability[y & ~paired] >= threshold).mean())
        if best is None or recall > best[0]:
            best = (recall, (c, hard_weight), oof, probability)
        if progress:
            progress("Choosing the model", step + 1, len(grid))
    assert best is not None
    recall, (c, hard_weight), oof, probability = best
    threshold = _lowest(probability, [(real & ~paired, REAL_FPR), (hard & ~paired, HARD_FPR)])
    scaling = _platt(oof, y)
    svm = _svm(c).fit(x, y, sample_weight=np.where(hard, hard_weight, 1.0))
    model = InstructionModel(svm.support_vectors_.astype(np.float64),
                             svm.dual_coef_[0].astype(np.float64), float(svm.intercept_[0]),
                             float(svm._gamma), scaling.parameters, float(threshold), 1.0,
                             embedder.name, embedder=embedder)
    model.pair_threshold, added = pair_threshold(model, context or [])
    model.pair_floor = pair_floor(model, list({e.text: e for e in examples
                                               if e.attack and _paired(e)}.values()))
    if progress:
        progress("Setting the pair threshold", 1, 1)

    def rate(mask: np.ndarray) -> float | None:
        return round(float((probability[mask] >= threshold).mean()), 4) if mask.any() else None

    figures = {
        "C": c, "hard_weight": hard_weight, "threshold": round(threshold, 4),
        "pair_threshold": round(model.pair_threshold, 4),
        "pair_floor": round(model.pair_floor, 4), "examples": len(examples),
        "attacks": int(y.sum()), "hard_negatives": int(hard.sum()),
        "real_texts": int(real.sum()),
        "sources": sorted({e.technique for e, r in zip(examples, real, strict=True) if r}),
        "out_of_fold": {"recall": round(recall, 4), "recall_split": rate(y & paired),
                        "fpr_hard": rate(hard & ~paired), "fpr_real": rate(real & ~paired)},
        "pairs_in_context": added,
        "support_vectors": len(svm.support_),
        "seconds": round(time.monotonic() - started, 1),
    }
    model.about = figures
    return model, figures


def _paired(example: Example) -> bool:
    return example.obfuscation in ("pair", "split") or example.technique in ("split",
                                                                              "two-sentence")


def _forms(examples: Sequence[Example]) -> tuple[list[Example], list[str]]:
    """Each example once per form the detector judges it in (``instructions.forms``; a text
    of two sentences as the pair it is judged as), with the texts."""
    found: list[Example] = []
    texts: list[str] = []
    for example in examples:
        sentences = split_sentences(example.text)
        these = ([pair_text(sentences[0], sentences[1])] if len(sentences) > 1
                 else forms(example.text))
        found += [example] * len(these)
        texts += these
    return found, texts


def pair_floor(model: InstructionModel, attacks: Sequence[Example]) -> float:
    """How suspicious one of two neighbours must be alone before the pair is judged (which
    costs an embedding): the highest floor under which at most ``PAIR_FLOOR_SHARE`` of the
    tune split's two-sentence attacks that only the pair catches would fall."""
    highest = []
    for attack in attacks:
        sentences = split_sentences(attack.text)
        if len(sentences) != 2:
            continue
        flags, pairs = replace(model, pair_floor=0.0).judge(
            sentences, [matches_patterns(s) for s in sentences])
        if not any(flags) and pairs.get(0, 0.0) >= model.pair_threshold:
            highest.append(max(float(model.probabilities(found).max()) for found in (
                [f for f in forms(s) if judged_by_model(f)] or [s] for s in sentences)))
    return float(np.quantile(highest, PAIR_FLOOR_SHARE)) if highest else 0.0


def _svm(c: float) -> Any:
    from sklearn.svm import SVC

    return SVC(C=c, kernel="rbf", gamma="scale", class_weight="balanced")


class _Platt:
    """A logistic curve from SVM scores to probabilities, fitted on out-of-fold scores."""

    def __init__(self, a: float, b: float) -> None:
        self.parameters = (a, b)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        a, b = self.parameters
        return 1.0 / (1.0 + np.exp(-(a * scores + b)))


def _platt(scores: np.ndarray, labels: np.ndarray) -> _Platt:
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1e6).fit(scores.reshape(-1, 1), labels)
    return _Platt(float(fitted.coef_[0][0]), float(fitted.intercept_[0]))


def context_paragraphs(*, corpus: Path = CORPUS_DIR, datasets: Path = DATASETS_DIR,
                       sentences: int = CONTEXT_SENTENCES) -> list[tuple[bool, list[str]]]:
    """Benign text of the tune split as it stands in articles, for the pair threshold:
    (whether it is a real article, its sentences): paragraphs of the tune articles (about
    ``sentences`` sentences per real source, whole paragraphs chosen by hash), and each kind
    of hard negatives as one run of neighbours."""
    found = []
    for source in available(datasets):
        taken = 0
        for paragraph in sorted(real_paragraphs(source, split="tune", datasets=datasets),
                                key=lambda p: hashlib.sha256(p.encode()).digest()):
            if taken >= sentences:
                break
            found.append((True, [s for s in split_sentences(paragraph) if s.strip()]))
            taken += len(found[-1][1])
    runs: dict[tuple[str, str], list[str]] = {}
    for e in hard_negatives(corpus):
        if e.split == "tune" and e.technique not in ("headings", "faq-questions"):
            runs.setdefault((e.lang, e.technique), []).extend(split_sentences(e.text))
    return found + [(False, run) for run in runs.values()]


def pair_threshold(model: InstructionModel, context: Sequence[tuple[bool, list[str]]]
                   ) -> tuple[float, dict[str, float]]:
    """The lowest pair threshold (not under the sentence threshold) at which judging pairs
    flags at most ``REAL_PAIR_FPR`` more of the real sentences of ``context`` and
    ``HARD_PAIR_FPR`` more of its hard negatives; and the shares it adds there."""
    sizes = {True: 0, False: 0}
    events: list[tuple[float, list[tuple[bool, int, int]]]] = []
    for number, (real, sentences) in enumerate(context):
        flags, pairs = model.judge(sentences, [matches_patterns(s) for s in sentences])
        sizes[real] += len(sentences)
        events += [(score, [(real, number, j) for j in (i, i + 1) if not flags[j]])
                   for i, score in pairs.items() if score >= model.threshold]
    limits = {True: REAL_PAIR_FPR * sizes[True], False: HARD_PAIR_FPR * sizes[False]}
    flagged: set[tuple[bool, int, int]] = set()
    counts = {True: 0, False: 0}
    cut = model.threshold
    for score, fresh in sorted(events, key=lambda e: -e[0]):
        new = set(fresh) - flagged
        if any(counts[real] + sum(f[0] == real for f in new) > limits[real]
               for real in (True, False)):
            cut = float(np.nextafter(score, 1.0))
            break
        flagged |= new
        for f in new:
            counts[f[0]] += 1
    return cut, {name: round(counts[real] / sizes[real], 4)
                 for name, real in (("real", True), ("hard", False)) if sizes[real]}


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    parts, step = [], 256
    for start in range(0, len(texts), step):
        parts.append(np.asarray(embedder.embed(texts[start:start + step]), dtype=np.float64))
        if progress:
            progress("Embedding", min(start + step, len(texts)), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim))


def _lowest(scores: np.ndarray, limits: Sequence[tuple[np.ndarray, float]]) -> float:
    """The lowest cut at which each group flags at most its share of ``scores``."""
    cut = 0.5
    for mask, share in limits:
        if not mask.any():
            continue
        ranked = np.sort(scores[mask])[::-1]
        allowed = int(np.floor(share * len(ranked)))
        # flag at most ``allowed``: the cut lies just above the (allowed+1)-th highest score
        if allowed < len(ranked):
            cut = max(cut, float(np.nextafter(ranked[allowed], 1.0)))
    return min(cut, 0.999)
