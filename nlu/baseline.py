"""The baseline intent model: TF-IDF over words and character n-grams (so Chinese needs no
segmenter) with a calibrated logistic regression. Fast to train on two cores; the fine-tuned
transformer models replace it behind the same ``IntentModel`` interface."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from nlu.data import Example

FILE = "baseline.pkl"


class BaselineIntentModel:
    kind = "baseline-tfidf-lr"

    def __init__(self, pipeline=None, labels: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
        self._pipeline = pipeline
        self.labels = labels or []

    @classmethod
    def train(cls, examples: list[Example], *, seed: int = 13) -> BaselineIntentModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        features = make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True,
                            lowercase=True, min_df=1),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                            lowercase=True, token_pattern=r"(?u)\b\w+\b"),
        )
        pipeline = make_pipeline(features, LogisticRegression(C=20.0, max_iter=2000,
                                                              random_state=seed))
        pipeline.fit([e.text for e in examples], [e.intent for e in examples])
        return cls(pipeline, [str(label) for label in pipeline.classes_])

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self._pipeline.predict_proba(texts)

    def save(self, directory: Path) -> None:
        with (directory / FILE).open("wb") as handle:
            pickle.dump({"pipeline": self._pipeline, "labels": self.labels}, handle)

    @classmethod
    def load(cls, directory: Path) -> BaselineIntentModel:
        with (directory / FILE).open("rb") as handle:
            state = pickle.load(handle)
        return cls(state["pipeline"], state["labels"])
