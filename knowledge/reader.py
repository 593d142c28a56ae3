"""The learned answer scorer: which candidate sentence answers the question, and whether any
does well enough to be sent.

``knowledge.compose`` describes every candidate sentence of the retrieved sources with the
same measures its hand-set score adds up (``compose.FEATURES``: coverage of the question's
rarity-weighted terms, closeness in meaning, whether it holds what the question's type asks
for, its source's rank and retrieval score, and how each compares with the best candidate).
A gradient-boosted classifier, trained on questions with known answers, turns them into the
probability that the sentence states the answer; the best candidate is sent when that
probability reaches the threshold chosen on the training questions, else the answer abstains.

Training (``parley kb train-scorer``, ``make scorer``) asks each training question as the answer
path would, up to the candidates: a candidate is a positive example when it states one of the
question's answers (and comes from its expected source, when one is named), and every
candidate of an unanswerable question is a negative one. The threshold, read off out-of-fold
probabilities, abstains on as many unanswerable questions as it can while giving up at most
``MAX_DROP`` of the answerable questions answered rightly in any language.

The model is a file of Parley's own (``models/scorer/scorer.pkl`` by default,
``PARLEY_ANSWER_SCORER``), written by training; without it the hand-set score decides.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.config import Settings
from knowledge.compose import FEATURES, Candidate, Passage, candidates
from knowledge.errors import KnowledgeError
from knowledge.evaluation import Progress, _import, _lang, throwaway_settings
from knowledge.evaluation_questions import Question, is_right

logger = logging.getLogger(__name__)
FORMAT = 1
# How many points of right answers the threshold may give up to abstain on unanswerable
# questions: a customer who gets no answer is offered a person, one who gets a wrong one is
# misled, but a scorer that abstains on everything helps no one.
MAX_DROP = 0.05


class ScorerUnusable(KnowledgeError):
    code = "scorer_unusable"


@dataclass
class LearnedScorer:
    """A classifier over ``compose.FEATURES`` and the least probability worth sending."""

    model: Any  # a fitted scikit-learn classifier with predict_proba
    threshold: float
    features: tuple[str, ...] = FEATURES
    about: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, rows: Sequence[Sequence[float]]) -> Sequence[float]:
        matrix = np.asarray(rows, dtype=np.float64)
        return [float(p) for p in self.model.predict_proba(matrix)[:, 1]]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            pickle.dump({"format": FORMAT, "features": list(self.features), "model": self.model,
                         "threshold": self.threshold, "about": self.about}, out)
        partial.replace(path)
        path.with_suffix(".json").write_text(json.dumps(
            {"threshold": self.threshold, "features": list(self.features), **self.about},
            ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LearnedScorer:
        """The scorer saved at ``path`` (a file Parley wrote: it is unpickled)."""
        try:
            with path.open("rb") as source:
                data = pickle.load(source)  # our own file, under models/
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise ScorerUnusable(f"{path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or tuple(data.get("features", ())) != FEATURES:
            raise ScorerUnusable(f"{path} was trained on other features: train it again")
        return cls(data["model"], float(data["threshold"]), FEATURES, data.get("about", {}))


def load_scorer(settings: Settings) -> LearnedScorer | None:
    """The configured scorer, or None (with a warning when a file is there but unusable)."""
    path = settings.answer_scorer_path
    if not path.is_file():
        return None
    try:
        return LearnedScorer.load(path)
    except ScorerUnusable as exc:
        logger.warning("answer scorer not used: %s", exc)
        return None


# ---------------------------------------------------------------------------------- training

@dataclass
class Mined:
    """Every candidate of every training question: features, label, and the question's row."""

    rows: list[tuple[float, ...]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # the question's index
    answerable: list[bool] = field(default_factory=list)  # per question
    keys: list[str] = field(default_factory=list)  # per question: what folds are made on

    def extend(self, found: Sequence[Candidate], labels: Sequence[bool], answerable: bool,
               key: str) -> None:
        number = len(self.answerable)
        self.answerable.append(answerable)
        self.keys.append(key)
        for candidate, label in zip(found, labels, strict=True):
            self.rows.append(candidate.features)
            self.labels.append(int(label))
            self.groups.append(number)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.rows, dtype=np.float64).reshape(-1, len(FEATURES)),
                np.asarray(self.labels), np.asarray(self.groups))


async def mine(kb_paths: Sequence[Path], questions: Sequence[Question], *, settings: Settings,
               keys: Sequence[str] | None = None, progress: Progress | None = None) -> Mined:
    """Import ``kb_paths`` into a throwaway index (as ``parley kb eval`` does) and describe
    the candidates of each question; ``keys`` (one per question) group questions for
    validation (an article: its questions are never split between folds)."""
    from knowledge import factory
    from knowledge.answer import KnowledgeAnswerer

    report = progress or (lambda _stage, _done, _total: None)
    mined = Mined()
    with tempfile.TemporaryDirectory(prefix="parley-scorer-") as folder:
        answerer = factory.answerer(throwaway_settings(settings, Path(folder)))
        try:
            if not isinstance(answerer, KnowledgeAnswerer):
                raise KnowledgeError("training needs the knowledge answerer's index")
            await _import(list(kb_paths), answerer.index, answerer.embedder, report)
            for number, question in enumerate(questions):
                found = await described(answerer, question.question, _lang(question))
                labels = [question.answerable and is_right(c.candidate.sentence, question.answers)
                          and (question.source is None or c.source_id == question.source)
                          for c in found]
                mined.extend([c.candidate for c in found], labels, question.answerable,
                             keys[number] if keys else str(number))
                report("questions", number + 1, len(questions))
        finally:
            await answerer.close()
    return mined


@dataclass(frozen=True)
class Described:
    candidate: Candidate
    source_id: str


async def described(answerer: Any, question: str, lang: str) -> list[Described]:
    """The candidates ``compose`` weighs for ``question``, with their sources' ids."""
    import asyncio

    query = (await asyncio.to_thread(answerer.embedder.embed, [question], query=True))[0]
    sources = await answerer.retrieve(question, lang=lang, query=query)
    passages = [Passage(s.number, s.title, s.text, s.faq) for s in sources]

    found = candidates(question, passages, similarity=answerer.similarity(query),
                       scores=[s.score for s in sources])
    ids = {s.number: s.source_id for s in sources}
    return [Described(c, ids[c.number]) for c in found]


@dataclass(frozen=True)
class Outcome:
    """Question-level results of choosing by probability at a threshold."""

    right: float        # of the answerable questions, answered with a sentence stating it
    abstained_unanswerable: float | None
    handled: float      # of all questions, right or rightly abstained


def outcome(probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            answerable: Sequence[bool], threshold: float) -> Outcome:
    best: dict[int, tuple[float, int]] = {}
    for p, label, group in zip(probabilities, labels, groups, strict=True):
        if group not in best or p > best[group][0]:
            best[int(group)] = (float(p), int(label))
    right = abstained = 0
    for group, is_answerable in enumerate(answerable):
        p, label = best.get(group, (0.0, 0))
        sent = p >= threshold
        if is_answerable:
            right += int(sent and label == 1)
        else:
            abstained += int(not sent)
    n_answerable = sum(answerable)
    n_unanswerable = len(answerable) - n_answerable
    return Outcome(right / max(n_answerable, 1),
                   abstained / n_unanswerable if n_unanswerable else None,
                   (right + abstained) / max(len(answerable), 1))


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                     answerable: Sequence[bool], *, max_drop: float = MAX_DROP,
                     languages: Sequence[str] | None = None) -> float:
    """The threshold that abstains on the most unanswerable questions while the share of
    answerable questions answered rightly stays within ``max_drop`` of sending every best
    candidate, in every language of ``languages`` (one per question) when given (the lowest of
    equals; 0 when no question is unanswerable)."""
    parts = [(probabilities, labels, groups, list(answerable))]
    if languages is not None:
        parts = []
        for language in sorted(set(languages)):
            kept = [q for q, lang in enumerate(languages) if lang == language]
            number = {q: i for i, q in enumerate(kept)}
            rows = np.asarray([number.get(int(q), -1) >= 0 for q in groups], dtype=bool)
            parts.append((probabilities[rows], labels[rows],
                          np.asarray([number[int(q)] for q in groups[rows]], dtype=np.int64),
                          [answerable[q] for q in kept]))
    floors = [outcome(*part, 0.0).right - max_drop - 1e-9 for part in parts]
    chosen, best = 0.0, (-1.0, -1.0)
    for threshold in np.round(np.arange(0.0, 0.96, 0.01), 2):
        if any(outcome(*part, float(threshold)).right < floor
               for part, floor in zip(parts, floors, strict=True)):
            break  # raising the threshold only ever sends fewer answers
        result = outcome(probabilities, labels, groups, answerable, float(threshold))
        key = (result.abstained_unanswerable or 0.0, result.right)
        if key > best:
            chosen, best = float(threshold), key
    return chosen


def languages_of(mined: Mined) -> list[str]:
    """Each question's language as its candidates describe it ("" without candidates)."""
    chinese = FEATURES.index("chinese")
    found = [""] * len(mined.answerable)
    for row, group in zip(mined.rows, mined.groups, strict=True):
        found[group] = "zh" if row[chinese] else "en"
    return found


def _classifier(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                          min_samples_leaf=40, l2_regularization=1.0,
                                          random_state=seed)


def fit(mined: Mined, *, folds: int = 5, seed: int = 2018, max_drop: float = MAX_DROP,
        classifier: Callable[[int], Any] = _classifier) -> tuple[LearnedScorer, dict[str, Any]]:
    """Fit on all of ``mined``; the threshold and the figures come from ``folds``-fold
    validation by key (out-of-fold probabilities), so they are not read off training data."""
    from sklearn.model_selection import GroupKFold

    x, y, groups = mined.arrays()
    if not len(y) or y.min() == y.max():
        raise KnowledgeError("training needs candidates that answer and candidates that do not")
    key_of = np.asarray([mined.keys[g] for g in groups])
    out_of_fold = np.zeros(len(y))
    for train, held in GroupKFold(n_splits=folds).split(x, y, key_of):
        model = classifier(seed).fit(x[train], y[train])
        out_of_fold[held] = model.predict_proba(x[held])[:, 1]
    threshold = choose_threshold(out_of_fold, y, groups, mined.answerable, max_drop=max_drop,
                                 languages=languages_of(mined))
    validated = outcome(out_of_fold, y, groups, mined.answerable, threshold)
    curve = {}
    for at in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
        point = outcome(out_of_fold, y, groups, mined.answerable, at)
        curve[f"{at:.1f}"] = [round(point.right, 4), None if point.abstained_unanswerable is None
                              else round(point.abstained_unanswerable, 4)]
    figures = {"questions": len(mined.answerable), "answerable": sum(mined.answerable),
               "candidates": len(y), "positives": int(y.sum()), "threshold": threshold,
               "max_drop": max_drop,
               "validation": {"folds": folds, "right": round(validated.right, 4),
                              "abstained_unanswerable": None
                              if validated.abstained_unanswerable is None
                              else round(validated.abstained_unanswerable, 4),
                              "handled": round(validated.handled, 4),
                              "right_and_abstained_by_threshold": curve}}
    model = classifier(seed).fit(x, y)
    return LearnedScorer(model, threshold, FEATURES, figures), figures
