"""Serving a fine-tuned model: ONNX Runtime on the CPU, batched, no torch needed.

``OnnxJointModel.predict`` turns texts into calibrated intent probabilities (the out-of-scope
decision included) and entity spans from the BIO head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu import tagging
from nlu.data import Entity

EXTRACTOR = "ParleyTransformer"
MODEL_FILE = "model.onnx"
HEADS_FILE = "heads.json"  # labels, tags, temperature, thresholds, tokenizer settings
CENTROIDS_FILE = "centroids.npy"


@dataclass(frozen=True)
class Prediction:
    intent: str  # the out-of-scope label when rejected
    confidence: float  # calibrated probability of the top in-scope intent
    ranking: list[tuple[str, float]]  # calibrated, best first
    rejected: bool  # below the out-of-scope threshold (or the out-of-scope class won)
    spans: list[Entity]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def pad(encodings: list, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the longest text, and the attention mask."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for i, enc in enumerate(encodings):
        ids[i, :len(enc.ids)] = enc.ids
        mask[i, :len(enc.ids)] = 1
    return ids, mask


def quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the matrix products and the embedding table, with one
    scale per output channel (per-tensor scales cost the demo model 1.5 points; per-channel
    ones nothing)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm", "Gather"])


class OnnxJointModel:
    def __init__(self, directory: Path, *, threads: int | None = 1,
                 model_file: str | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        heads = json.loads((directory / HEADS_FILE).read_text())
        self.labels: list[str] = heads["labels"]
        self.tags: list[str] = heads["tags"]
        self.oos_label: str | None = heads["oos_label"]
        self.temperature = float(heads["temperature"])
        self.threshold = float(heads["threshold"])
        self.similarity_threshold = float(heads.get("similarity_threshold", -1.0))
        centroids = directory / CENTROIDS_FILE
        self.centroids: np.ndarray | None = np.load(centroids) if centroids.exists() else None
        self.pad_id = int(heads["pad_id"])
        self.max_length = int(heads["max_length"])
        self.serving = heads.get("serving", {})
        self._oos_index = self.labels.index(self.oos_label) if self.oos_label else None
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(directory / (model_file or MODEL_FILE)),
                                            options, providers=["CPUExecutionProvider"])

    def _run(self, texts: list[str]) -> tuple[list, np.ndarray, np.ndarray, np.ndarray | None]:
        encodings = self.tokenizer.encode_batch(texts)
        ids, mask = pad(encodings, self.pad_id)
        outputs = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        vectors = None
        if len(outputs) > 2:  # the pooled sentence vector, unit length
            vectors = outputs[2] / np.maximum(
                np.linalg.norm(outputs[2], axis=1, keepdims=True), 1e-9)
        return encodings, outputs[0], outputs[1], vectors

    def intent_logits(self, texts: list[str], batch_size: int = 64,
                      with_vectors: bool = False):  # type: ignore[no-untyped-def]
        parts = [self._run(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        logits = np.concatenate([p[1] for p in parts]) if parts \
            else np.zeros((0, len(self.labels)))
        if not with_vectors:
            return logits
        return logits, np.concatenate([p[3] for p in parts])

    def sentence_vectors(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.intent_logits(texts, batch_size, with_vectors=True)[1]

    def similarity(self, vectors: np.ndarray | None) -> np.ndarray | None:
        """Cosine similarity to the nearest in-scope intent centroid."""
        if vectors is None or self.centroids is None:
            return None
        return (vectors @ self.centroids.T).max(axis=1)

    def in_scope(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top in-scope probability and its index, per row (calibrated)."""
        probs = softmax(logits / self.temperature)
        if self._oos_index is not None:
            probs = probs.copy()
            probs[:, self._oos_index] = -1.0
        return probs.max(axis=1), probs.argmax(axis=1)

    def predict(self, texts: list[str], batch_size: int = 64) -> list[Prediction]:
        out: list[Prediction] = []
        for i in range(0, len(texts), batch_size):
            chunk = texts[i:i + batch_size]
            encodings, intent_logits, tag_logits, vectors = self._run(chunk)
            probs = softmax(intent_logits / self.temperature)
            scores, best = self.in_scope(intent_logits)
            similarity = self.similarity(vectors) if self.similarity_threshold > -1 else None
            tag_probs = softmax(tag_logits)
            for row, (text, enc) in enumerate(zip(chunk, encodings, strict=True)):
                order = np.argsort(-probs[row])
                ranking = [(self.labels[j], float(probs[row, j])) for j in order]
                rejected = bool(scores[row] < self.threshold) or (
                    self._oos_index is not None and int(order[0]) == self._oos_index) or (
                    similarity is not None and bool(similarity[row] < self.similarity_threshold))
                intent = (self.oos_label or "nlu_fallback") if rejected \
                    else self.labels[best[row]]
                n = len(enc.ids)
                tag_ids = tag_probs[row, :n].argmax(axis=1)
                spans = tagging.decode(
                    text, enc.offsets, [bool(s) for s in enc.special_tokens_mask],
                    [self.tags[t] for t in tag_ids],
                    [float(tag_probs[row, k, t]) for k, t in enumerate(tag_ids)],
                    extractor=EXTRACTOR)
                out.append(Prediction(intent, float(scores[row]), ranking, rejected, spans))
        return out
