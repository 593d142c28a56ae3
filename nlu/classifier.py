"""The intent model: multilingual-e5-small sentence embeddings (English and Chinese alike)
with a logistic-regression head. Trains in seconds on two cores; the fine-tuned transformer
replaces it behind the same interface (``train``, ``predict_proba``, ``save``, ``load``)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge.embeddings import E5Embedder, Embedder
from nlu.data import Example

FILE = "intent_head.pkl"


class EmbeddingIntentModel:
    kind = "e5-small+logreg"

    def __init__(self, head=None, labels: list[str] | None = None,  # type: ignore[no-untyped-def]
                 embedder: Embedder | None = None) -> None:
        self._head = head
        self.labels = labels or []
        self.embedder = embedder or E5Embedder()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed(list(texts), query=True)

    @classmethod
    def train(cls, examples: list[Example], *, seed: int = 13,
              features: np.ndarray | None = None,
              embedder: Embedder | None = None) -> EmbeddingIntentModel:
        from sklearn.linear_model import LogisticRegression

        model = cls(embedder=embedder)
        x = features if features is not None else model.embed([e.text for e in examples])
        head = LogisticRegression(C=50.0, max_iter=3000, random_state=seed)
        head.fit(x, [e.intent for e in examples])
        model._head = head
        model.labels = [str(label) for label in head.classes_]
        return model

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_features(self.embed(texts))

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        return self._head.predict_proba(features)

    def save(self, directory: Path) -> None:
        with (directory / FILE).open("wb") as handle:
            pickle.dump({"head": self._head, "labels": self.labels}, handle)

    @classmethod
    def load(cls, directory: Path) -> EmbeddingIntentModel:
        with (directory / FILE).open("rb") as handle:
            state = pickle.load(handle)
        return cls(state["head"], state["labels"])
