"""A trained joint model as a serving folder: the ONNX graph, its tokenizer and heads.json.

``export_onnx`` writes a float32 graph with dynamic batch and sequence axes (inputs
``input_ids`` and ``attention_mask``; outputs ``intent_logits``, ``tag_logits`` and
``sentence``), which is what ``nlu.runtime.OnnxJointModel`` serves. ``settle_format`` swaps
in the int8 graph only where validation accuracy holds, and the folder always keeps one
loadable ``model.onnx``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlu.data import Example
from nlu.runtime import HEADS_FILE, MODEL_FILE, OnnxJointModel, quantize


@dataclass
class FitResult:
    directory: Path  # holds model.onnx, tokenizer.json, heads.json
    labels: list[str]
    tags: list[str]
    oos_label: str | None
    temperature: float
    threshold: float
    similarity_threshold: float = -1.0
    serving: dict[str, Any] = field(default_factory=dict)


def export_onnx(model: Any, path: Path, pad_id: int) -> None:
    """Export a torch model (in eval mode, on the CPU) to ``path``."""
    import torch

    ids = torch.full((2, 8), pad_id, dtype=torch.long)
    ids[:, 0] = 0
    ids[:, 1:6] = 100
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes the export keeps dynamic
        torch.onnx.export(
            model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["intent_logits", "tag_logits", "sentence"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "intent_logits": {0: "batch"},
                          "tag_logits": {0: "batch", 1: "sequence"},
                          "sentence": {0: "batch"}},
            opset_version=17, dynamo=False)


def write_heads(result: FitResult, *, max_length: int, pad_id: int) -> None:
    (result.directory / HEADS_FILE).write_text(json.dumps({
        "labels": result.labels, "tags": result.tags, "oos_label": result.oos_label,
        "temperature": result.temperature, "threshold": result.threshold,
        "similarity_threshold": result.similarity_threshold,
        "max_length": max_length, "pad_id": pad_id, "model_file": MODEL_FILE,
        "serving": result.serving,
    }, indent=2, ensure_ascii=False))


def settle_format(result: FitResult, val: list[Example], *, int8: bool, max_drop: float,
                  threads: int | None) -> OnnxJointModel:
    """Quantise to int8 (when ``int8``) and keep it unless validation accuracy drops by
    ``max_drop`` or more; record the choice in ``result.serving``. Returns the model as it
    will be served."""
    float_model = OnnxJointModel(result.directory, threads=threads)
    result.serving = {"format": "onnx-fp32"}
    if not int8:
        return float_model
    quantized = result.directory / "model.int8.onnx"
    quantize(result.directory / MODEL_FILE, quantized)
    int8_model = OnnxJointModel(result.directory, threads=threads, model_file=quantized.name)
    fp32_acc = _accuracy(float_model, result.labels, val)
    int8_acc = _accuracy(int8_model, result.labels, val)
    keep = fp32_acc is None or int8_acc is None or int8_acc >= fp32_acc - max_drop
    result.serving = {"format": "onnx-int8" if keep else "onnx-fp32",
                      "val_accuracy_fp32": fp32_acc, "val_accuracy_int8": int8_acc}
    if not keep:
        quantized.unlink()
        return float_model
    os.replace(quantized, result.directory / MODEL_FILE)
    return OnnxJointModel(result.directory, threads=threads)


def infer(model: OnnxJointModel, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Intent logits and unit sentence vectors of ``texts`` (at least one), in their order.
    The model runs them shortest first: batches of similar length pad less, which halves the
    time on BANKING77's sentences."""
    order = np.argsort([len(text) for text in texts], kind="stable")
    logits, vectors = model.intent_logits([texts[i] for i in order], with_vectors=True)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return logits[inverse], vectors[inverse]


def _accuracy(model: OnnxJointModel, labels: list[str], examples: list[Example]) -> float | None:
    """Intent accuracy on the examples of known intents; None when there are none."""
    label_index = {label: i for i, label in enumerate(labels)}
    known = [e for e in examples if e.intent in label_index]
    if not known:
        return None
    targets = np.array([label_index[e.intent] for e in known], dtype=np.int64)
    return float((infer(model, [e.text for e in known])[0].argmax(1) == targets).mean())
