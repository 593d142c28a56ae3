"""Parse text into Rasa's parse format with the registry's active version (and its canary).

Hot swap: ``refresh()`` loads a newly activated version completely before it replaces the old
one in a single reference assignment; requests already running finish on the model they
started with, so an activation or a rollback fails or drops no request.

Canary: a candidate version takes a fixed share of conversations, chosen by a hash of the
conversation id (a conversation stays on one version). Both versions' live figures are kept
side by side.

Batching: concurrent requests are grouped by a ``MicroBatcher`` into one model call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import tracing
from core.batching import MicroBatcher
from core.order_ids import OrderIds
from nlu.patterns import Gazetteer, combine, pattern_spans, written_language
from nlu.registry import Registry
from nlu.runtime import OnnxJointModel, Prediction
from nlu.train import GAZETTEER_FILE

logger = logging.getLogger(__name__)
FALLBACK_INTENT = "nlu_fallback"
RANKING_LENGTH = 10


class LoadedModel:
    def __init__(self, directory: Path, *, threads: int | None = 1) -> None:
        self.metadata = json.loads((directory / "metadata.json").read_text())
        self.version: str = self.metadata["version"]
        self.model = OnnxJointModel(directory, threads=threads)
        gazetteer_path = directory / GAZETTEER_FILE
        self.gazetteer = Gazetteer(
            json.loads(gazetteer_path.read_text()) if gazetteer_path.exists() else {})


@dataclass
class VersionStats:
    """Live figures of one version, for comparing a canary with the active model."""
    requests: int = 0
    fallbacks: int = 0
    confidence_sum: float = 0.0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=2000))

    def add(self, confidence: float, fallback: bool, latency_ms: float) -> None:
        self.requests += 1
        self.fallbacks += int(fallback)
        self.confidence_sum += confidence
        self.latencies_ms.append(latency_ms)

    def summary(self) -> dict[str, Any]:
        latencies = np.array(self.latencies_ms) if self.latencies_ms else None
        return {
            "requests": self.requests,
            "fallback_rate": self.fallbacks / self.requests if self.requests else None,
            "mean_confidence": self.confidence_sum / self.requests if self.requests else None,
            "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies is not None
            else None,
            "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies is not None
            else None,
        }




def project_options(root: Path) -> dict[str, Any]:
    """``NLUService``'s keyword arguments from a project: its order id format and languages
    (the defaults when the project cannot be read: the processes that own it report why)."""
    from core.project import ProjectError, project_of

    try:
        project = project_of(root)
    except ProjectError:
        return {}
    return {"order_ids": project.orders.ids, "languages": tuple(project.languages),
            "default_language": project.default}


class NLUService:
    def __init__(self, model_root: Path, *, fallback_threshold: float | None = None,
                 threads: int | None = 1, batching: bool = False,
                 order_ids: OrderIds = OrderIds(), languages: Sequence[str] = (),
                 default_language: str = "en") -> None:
        """``model_root`` is a registry (serve its active version and canary) or one version's
        folder (serve that version only). The project's order id format, its languages and
        default language shape the parse (``nlu.patterns``: ``pattern_spans``,
        ``written_language``)."""
        self.order_ids = order_ids
        self.languages = tuple(languages)
        self.default_language = default_language
        self.pinned = model_root if (Path(model_root) / "metadata.json").exists() else None
        self.registry = Registry(Path(model_root).parent if self.pinned else model_root)
        self.fallback_threshold = fallback_threshold  # None: each model's calibrated threshold
        self.threads = threads
        self._active: LoadedModel | None = None
        self._canary: LoadedModel | None = None
        self._canary_share = 0.0
        self._stamp: tuple[str | None, str | None] | None = None
        self._lock = threading.Lock()  # one refresh at a time; parsing never takes it
        self.stats: dict[str, VersionStats] = {}
        self.batcher = (MicroBatcher(self._run_batch, name="nlu-batcher") if batching
                        else None)

    # ------------------------------------------------------------ versions
    def warm_up(self) -> None:
        if self.pinned is not None:
            if self._active is None:
                self._active = LoadedModel(self.pinned, threads=self.threads)
            return
        self.refresh()
        if self._active is None:
            self._active = LoadedModel(self.registry.active_dir(), threads=self.threads)

    def refresh(self) -> bool:
        """Serve what the registry says; returns True when something changed. A version that
        fails to load leaves the current one serving."""
        if self.pinned is not None:
            return False
        with self._lock:
            stamp = self.registry.state_stamp()
            if stamp == self._stamp:
                return False
            active_version, _ = stamp
            if active_version is None:
                return False
            active = self._active
            if active is None or active.version != active_version:
                active = LoadedModel(self.registry.root / active_version, threads=self.threads)
            canary_info = self.registry.canary()
            canary, share = None, 0.0
            if canary_info and canary_info["version"] != active_version:
                canary = self._canary if self._canary and \
                    self._canary.version == canary_info["version"] else LoadedModel(
                        self.registry.root / canary_info["version"], threads=self.threads)
                share = float(canary_info["share"])
            # the swap: plain reference assignments, atomic for readers
            self._active, self._canary, self._canary_share = active, canary, share
            self._stamp = stamp
            logger.info("NLU serving %s%s", active.version,
                        f" (canary {canary.version} at {share:.0%})" if canary else "")
            return True

    @property
    def version(self) -> str | None:
        return self._active.version if self._active else None

    def choose(self, conversation_id: str | None) -> LoadedModel:
        active, canary, share = self._active, self._canary, self._canary_share
        if active is None:
            self.warm_up()
            active = self._active
        assert active is not None
        if canary is not None and conversation_id:
            bucket = int(hashlib.sha256(conversation_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if bucket < share:
                return canary
        return active

    def report(self) -> dict[str, Any]:
        active, canary = self._active, self._canary
        return {
            "active": active.version if active else None,
            "canary": {"version": canary.version, "share": self._canary_share}
            if canary else None,
            "live": {version: stats.summary() for version, stats in self.stats.items()},
        }

    # ------------------------------------------------------------ parsing
    def parse(self, text: str, conversation_id: str | None = None) -> dict[str, Any]:
        model = self.choose(conversation_id)
        return self._run_batch(model, [text])[0]

    def parse_future(self, text: str, conversation_id: str | None = None) -> Future:
        """Queue ``text`` for the batcher (falls back to an inline parse without one)."""
        model = self.choose(conversation_id)
        span = tracing.start_span("nlu.parse", attributes={
            "parley.conversation_id": conversation_id, "parley.nlu.version": model.version,
            "parley.nlu.canary": model is not self._active})
        if self.batcher is None:
            future: Future = Future()
            try:
                future.set_result(self._run_batch(model, [text])[0])
            except Exception as exc:
                tracing.failed(span, exc)
                span.end()
                raise
        else:
            future = self.batcher.submit(model, text)
        if span.is_recording():
            future.add_done_callback(lambda done: _end_parse_span(span, done))
        return future

    def _run_batch(self, model: LoadedModel, texts: list[str]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        predictions = model.model.predict(texts)
        per_item_ms = (time.perf_counter() - started) * 1000 / max(1, len(texts))
        stats = self.stats.setdefault(model.version, VersionStats())
        results = []
        for text, prediction in zip(texts, predictions, strict=True):
            result = self._to_rasa(model, text, prediction)
            stats.add(prediction.confidence, result["intent"]["name"] == FALLBACK_INTENT,
                      per_item_ms)
            results.append(result)
        return results

    def _to_rasa(self, model: LoadedModel, text: str, prediction: Prediction) -> dict[str, Any]:
        threshold = self.fallback_threshold if self.fallback_threshold is not None \
            else model.model.threshold
        oos_label = model.model.oos_label
        ranking = [{"name": name, "confidence": round(conf, 4)}
                   for name, conf in prediction.ranking[:RANKING_LENGTH]]
        if self.fallback_threshold is None:
            rejected = prediction.rejected  # the model's own calibrated decision
        else:
            rejected = prediction.confidence < threshold or (
                bool(oos_label) and prediction.ranking[0][0] == oos_label)
        if rejected and oos_label and ranking[0]["name"] == oos_label:
            top = dict(ranking[0])  # the out-of-scope class: an intent the domain answers
        elif rejected:
            # Rasa's fallback convention: the threshold is the fallback's confidence
            top = {"name": FALLBACK_INTENT, "confidence": round(threshold, 4)}
            ranking = [top, *ranking]
        else:
            top = next(dict(r) for r in ranking if r["name"] != oos_label)
        spans = combine(pattern_spans(text, self.order_ids), prediction.spans,
                        model.gazetteer.spans(text))
        return {
            "text": text,
            "intent": top,
            "intent_ranking": ranking,
            "entities": [s.to_rasa() for s in spans],
            "language": written_language(text, spans, self.languages, self.default_language),
            "model_version": model.version,
            "canary": model is not self._active,
        }

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


def _end_parse_span(span: tracing.Span, future: Future) -> None:
    """What the parse found (the intent, never the text or the entities' values)."""
    if (error := future.exception()) is not None:
        tracing.failed(span, error)
    else:
        intent = future.result()["intent"]
        span.set_attributes({"parley.intent": intent["name"],
                             "parley.intent.confidence": float(intent["confidence"])})
    span.end()
