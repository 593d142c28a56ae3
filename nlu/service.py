"""Parse text into Rasa's parse format with the active model version."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from nlu.classifier import EmbeddingIntentModel
from nlu.patterns import Gazetteer, detect_language, merge, pattern_spans
from nlu.registry import Registry
from nlu.train import GAZETTEER_FILE

FALLBACK_INTENT = "nlu_fallback"
RANKING_LENGTH = 10


class LoadedModel:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.metadata = json.loads((directory / "metadata.json").read_text())
        self.intents = EmbeddingIntentModel.load(directory)
        gazetteer_path = directory / GAZETTEER_FILE
        self.gazetteer = Gazetteer(
            json.loads(gazetteer_path.read_text()) if gazetteer_path.exists() else {})


class NLUService:
    def __init__(self, model_root: Path, *, fallback_threshold: float = 0.35) -> None:
        self.registry = Registry(model_root)
        self.fallback_threshold = fallback_threshold
        self._model: LoadedModel | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is None:
                self._model = LoadedModel(self.registry.active_dir())

    @property
    def version(self) -> str | None:
        return self._model.metadata["version"] if self._model else None

    def parse(self, text: str) -> dict[str, Any]:
        if self._model is None:
            self.warm_up()
        return self.parse_batch([text])[0]

    def parse_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        model = self._model
        assert model is not None, "call warm_up() first"
        probabilities = model.intents.predict_proba(texts)
        results = []
        for text, probs in zip(texts, probabilities, strict=True):
            order = probs.argsort()[::-1][:RANKING_LENGTH]
            ranking = [{"name": model.intents.labels[i], "confidence": round(float(probs[i]), 4)}
                       for i in order]
            top = dict(ranking[0])
            if top["confidence"] < self.fallback_threshold:
                top = {"name": FALLBACK_INTENT, "confidence": self.fallback_threshold}
                ranking = [top, *ranking]
            spans = merge(pattern_spans(text), model.gazetteer.spans(text))
            results.append({
                "text": text,
                "intent": top,
                "intent_ranking": ranking,
                "entities": [s.to_rasa() for s in spans],
                "language": detect_language(text),
                "model_version": model.metadata["version"],
            })
        return results
