"""Fine-tune a pretrained transformer encoder end to end for intents and BIO entities.

One encoder, two heads: the intent head reads the mean-pooled sentence, the entity head reads
every token. After training the model is exported to ONNX; confidence is calibrated by
temperature scaling on validation data, the out-of-scope threshold is chosen there too, and the
int8 export replaces the float one only where validation accuracy holds.

Training is seeded and resumable: a checkpoint is written after every epoch into a work folder
named by the data and the configuration, and a rerun continues from the last one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nlu import tagging
from nlu.data import Example
from nlu.encoders import DEFAULT_BASE, resolve_base
from nlu.runtime import HEADS_FILE, MODEL_FILE, pad

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (phase, done, total)
OOS_NAMES = ("out_of_scope", "oos")


@dataclass(frozen=True)
class TrainConfig:
    base: str = DEFAULT_BASE
    layers: int = 0  # keep the first N encoder layers; 0 keeps them all
    epochs: int = 8
    min_steps: int = 120  # small data: more epochs, so that a few examples still train
    batch_size: int = 16
    learning_rate: float = 6e-5
    head_learning_rate: float = 2e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    entity_weight: float = 1.0
    max_length: int = 64
    seed: int = 13
    val_fraction: float = 0.1
    threads: int = 0  # 0: torch's default
    quantize: bool = True
    max_quantization_drop: float = 0.01  # int8 is kept when validation accuracy drops less
    oos_intents: tuple[str, ...] = OOS_NAMES
    freeze_word_embeddings: bool = True
    device: str = "auto"
    precision: str = "auto"  # "bf16" where the processor computes it natively, else "fp32"
    members: int = 1  # >1: an ensemble of models seeded seed, seed+1, ... averaged in one graph

    def key(self, data_digest: str) -> str:
        blob = json.dumps({**asdict(self), "data": data_digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


PRESETS: dict[str, TrainConfig] = {
    # The demo bot on two CPU cores: a few minutes.
    "demo": TrainConfig(),
    # CI and tests: the same code, a third of the encoder and fewer steps.
    "fast": TrainConfig(layers=4, epochs=6, min_steps=80, batch_size=16, learning_rate=1.5e-4,
                        head_learning_rate=3e-3, max_length=48),
    # Benchmarks (thousands of examples; meant for a GPU).
    "full": TrainConfig(epochs=10, min_steps=0, batch_size=32, learning_rate=8e-5,
                        head_learning_rate=2e-3, max_length=64),
}


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


def split_validation(examples: list[Example], fraction: float,
                     seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified hold-out: ``fraction`` of each intent with at least five examples."""
    if fraction <= 0:
        return examples, []
    rng = random.Random(seed)
    by_intent: dict[str, list[Example]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example)
    train: list[Example] = []
    val: list[Example] = []
    for intent in sorted(by_intent):
        items = list(by_intent[intent])
        rng.shuffle(items)
        n_val = round(len(items) * fraction) if len(items) >= 5 else 0
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[Any]:
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer.encode_batch(list(texts))


def _pad_batch(encodings: Sequence[Any], pad_id: int,
               tag_rows: Sequence[list[int]] | None = None) -> dict[str, np.ndarray]:
    ids, mask = pad(list(encodings), pad_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    if tag_rows is not None:
        tags = np.full(ids.shape, tagging.IGNORE, dtype=np.int64)
        for i, row in enumerate(tag_rows):
            tags[i, :len(row)] = row
        batch["tags"] = tags
    return batch


def _torch_model(base_dir: Path, config: TrainConfig, n_intents: int, n_tags: int):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # unused layers of a truncated encoder are expected
    hf_logging.disable_progress_bar()
    encoder_config = AutoConfig.from_pretrained(base_dir)
    if config.layers:
        encoder_config.num_hidden_layers = min(config.layers, encoder_config.num_hidden_layers)
    encoder_config._attn_implementation = "sdpa"  # training; the export switches to eager
    kwargs: dict[str, Any] = {"config": encoder_config}
    if encoder_config.model_type == "bert":
        kwargs["add_pooling_layer"] = False
    encoder = AutoModel.from_pretrained(base_dir, **kwargs)

    class JointModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = encoder_config.hidden_size
            self.encoder = encoder
            self.dropout = nn.Dropout(0.1)
            self.intent_head = nn.Linear(hidden, n_intents)
            self.tag_head = nn.Linear(hidden, n_tags)

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            hidden = self.encoder(input_ids=input_ids,
                                  attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return (self.intent_head(self.dropout(pooled)),
                    self.tag_head(self.dropout(hidden)), pooled)

    model = JointModel()
    if config.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    torch.nn.init.normal_(model.intent_head.weight, std=0.02)
    torch.nn.init.zeros_(model.intent_head.bias)
    return model


def _trainable_state(model: Any, config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must hold: everything but a frozen word-embedding table."""
    return {k: v for k, v in model.state_dict().items()
            if not (config.freeze_word_embeddings and "word_embeddings" in k)}


def _device(config: TrainConfig) -> str:
    import torch

    if config.device != "auto":
        return config.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _precision(config: TrainConfig, device: str) -> str:
    """bf16 autocast where the hardware runs it natively (CUDA, or CPUs with AMX/AVX512-BF16:
    about twice as fast as fp32 there), fp32 elsewhere (emulated bf16 is slower)."""
    import torch

    if config.precision != "auto":
        return config.precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "fp32"


def _set_attention(model: Any, implementation: str) -> None:
    try:
        model.encoder.set_attn_implementation(implementation)
    except (AttributeError, ValueError):
        model.encoder.config._attn_implementation = implementation


def fit(train: list[Example], val: list[Example], config: TrainConfig, *, cache: Path,
        workdir: Path, progress: Progress = lambda phase, done, total: None) -> FitResult:
    """Fine-tune on ``train``, calibrate on ``val``, export to ``workdir``. ``cache`` holds the
    unpacked base encoders."""
    data = _prepare(train, config, cache)
    trained = _train_members(data, config, workdir, range(config.members), progress)
    progress("exporting", 0, 1)
    export = workdir / "export"
    shutil.rmtree(export, ignore_errors=True)
    export.mkdir()
    model = trained[0] if len(trained) == 1 else _ensemble(trained, config)
    _export_onnx(model.to("cpu").eval(), export / MODEL_FILE, data.pad_id)
    shutil.copy(data.base_dir / "tokenizer.json", export / "tokenizer.json")
    result = FitResult(export, data.labels, data.tags, data.oos_label, 1.0, 0.3)
    _write_heads(result, config, data.pad_id)
    progress("exporting", 1, 1)
    progress("calibrating", 0, 1)
    calibrate(result, train, val, config)
    progress("calibrating", 1, 1)
    return result


@dataclass
class _TrainingData:
    base_dir: Path  # the unpacked base encoder
    labels: list[str]
    tags: list[str]
    oos_label: str | None
    encodings: list[Any]
    tag_rows: list[list[int]]
    intents: np.ndarray
    pad_id: int


def fit_members(train: list[Example], config: TrainConfig, members: Sequence[int], *,
                cache: Path, workdir: Path,
                progress: Progress = lambda phase, done, total: None) -> None:
    """Train only the given members of an ensemble (``config.members`` > 1), for example one
    per process; a later ``fit`` with the same data and workdir finds their checkpoints and
    only exports and calibrates."""
    _train_members(_prepare(train, config, cache), config, workdir, members, progress)


def _prepare(train: list[Example], config: TrainConfig, cache: Path) -> _TrainingData:
    import torch
    from tokenizers import Tokenizer

    if config.threads:
        torch.set_num_threads(config.threads)
    base_dir = resolve_base(config.base, cache)
    tokenizer = Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    labels = sorted({e.intent for e in train})
    label_index = {label: i for i, label in enumerate(labels)}
    tags = tagging.tag_names([ent.entity for e in train for ent in e.entities])
    tag_index = {t: i for i, t in enumerate(tags)}
    encodings = _encode(tokenizer, [e.text for e in train], config.max_length)
    return _TrainingData(
        base_dir=base_dir, labels=labels, tags=tags,
        oos_label=next((name for name in config.oos_intents if name in label_index), None),
        encodings=encodings,
        tag_rows=[tagging.token_tags(enc.offsets, [bool(s) for s in enc.special_tokens_mask],
                                     ex.entities, tag_index)
                  for enc, ex in zip(encodings, train, strict=True)],
        intents=np.array([label_index[e.intent] for e in train], dtype=np.int64),
        pad_id=_pad_id(base_dir))


def _train_members(data: _TrainingData, config: TrainConfig, workdir: Path,
                   members: Sequence[int], progress: Progress) -> list[Any]:
    """Member ``m`` is seeded ``seed + m`` and checkpoints in ``workdir/member-m`` (a single
    model in ``workdir`` itself). Progress counts the steps of all of them."""
    steps_per_epoch, epochs = _schedule(config, len(data.encodings))
    steps = steps_per_epoch * epochs
    trained = []
    for position, member in enumerate(members):
        def member_progress(phase: str, done: int, total: int, offset: int = position) -> None:
            progress(phase, offset * steps + done, len(members) * steps)
        trained.append(_train_member(
            data, config, seed=config.seed + member,
            workdir=workdir if config.members == 1 else workdir / f"member-{member}",
            progress=member_progress))
    return trained


def _schedule(config: TrainConfig, n_examples: int) -> tuple[int, int]:
    """Steps per epoch and epochs (more epochs for small data, to reach ``min_steps``)."""
    steps_per_epoch = math.ceil(n_examples / config.batch_size)
    return steps_per_epoch, max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))


def _train_member(data: _TrainingData, config: TrainConfig, *, seed: int,
                  workdir: Path, progress: Progress) -> Any:
    """Train one model (resuming from its checkpoint in ``workdir``) and return it, switched to
    the attention implementation that exports to ONNX."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = _device(config)
    n_tags = len(data.tags)
    model = _torch_model(data.base_dir, config, len(data.labels), n_tags).to(device)
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters()
            if n.startswith("encoder.") and p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": body, "lr": config.learning_rate},
        {"params": heads, "lr": config.head_learning_rate},
    ], weight_decay=config.weight_decay, fused=True)
    autocast_dtype = torch.bfloat16 if _precision(config, device) == "bf16" else None
    steps_per_epoch, epochs = _schedule(config, len(data.encodings))
    total = steps_per_epoch * epochs
    warmup = max(1, int(total * config.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))

    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "checkpoint.pt"
    start_epoch = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1
        if start_epoch < epochs:
            logger.info("resuming NLU training at epoch %d of %d", start_epoch + 1, epochs)

    intent_loss = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    tag_loss = torch.nn.CrossEntropyLoss(ignore_index=tagging.IGNORE)
    has_entities = n_tags > 1
    lengths = [len(e.ids) for e in data.encodings]
    for epoch in range(start_epoch, epochs):
        model.train()
        order = _length_bucketed(np.random.default_rng(seed + epoch), lengths, config.batch_size)
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = _pad_batch([data.encodings[i] for i in idx], data.pad_id,
                               [data.tag_rows[i] for i in idx])
            ids = torch.from_numpy(batch["input_ids"]).to(device)
            mask = torch.from_numpy(batch["attention_mask"]).to(device)
            with (torch.autocast(device.split(":")[0], dtype=autocast_dtype) if autocast_dtype
                  else contextlib.nullcontext()):
                intent_logits, tag_logits, _ = model(ids, mask)
            intent_logits, tag_logits = intent_logits.float(), tag_logits.float()
            loss = intent_loss(intent_logits, torch.from_numpy(data.intents[idx]).to(device))
            if has_entities:
                loss = loss + config.entity_weight * tag_loss(
                    tag_logits.reshape(-1, n_tags),
                    torch.from_numpy(batch["tags"]).to(device).reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            progress("training", epoch * steps_per_epoch + step + 1, total)
        torch.save({"epoch": epoch, "model": _trainable_state(model, config),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   workdir / "checkpoint.tmp")
        os.replace(workdir / "checkpoint.tmp", checkpoint)
    _set_attention(model, "eager")  # exports cleanly to ONNX
    return model


def _ensemble(members: list[Any], config: TrainConfig) -> Any:
    """One module that averages the members' intent and tag logits; its sentence vector joins
    the members' unit vectors, so its cosine similarity is the members' mean. A frozen word
    embedding table is the same in every member and is stored once."""
    import torch
    from torch import nn

    if config.freeze_word_embeddings:
        shared = members[0].encoder.get_input_embeddings()
        for member in members[1:]:
            member.encoder.set_input_embeddings(shared)

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            outputs = [m(input_ids, attention_mask) for m in self.members]
            intent = torch.stack([o[0] for o in outputs]).mean(0)
            tags = torch.stack([o[1] for o in outputs]).mean(0)
            sentence = torch.cat([nn.functional.normalize(o[2], dim=-1) for o in outputs], -1)
            return intent, tags, sentence

    return Ensemble()


def _length_bucketed(rng: np.random.Generator, lengths: list[int], batch_size: int) -> np.ndarray:
    """A shuffled order in which each batch holds texts of similar length (less padding):
    shuffle, sort within windows of 50 batches, then shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    chunks = [sorted(order[i:i + window], key=lambda j: lengths[j])
              for i in range(0, len(order), window)]
    batches = [chunk[i:i + batch_size] for chunk in chunks
               for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return np.array([j for batch in batches for j in batch], dtype=np.int64)


def _pad_id(base_dir: Path) -> int:
    meta = base_dir / "parley_base.json"
    if meta.exists():
        return int(json.loads(meta.read_text())["special"]["pad"])
    config = json.loads((base_dir / "config.json").read_text())
    return int(config.get("pad_token_id") or 0)


def _export_onnx(model: Any, path: Path, pad_id: int) -> None:
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


def _write_heads(result: FitResult, config: TrainConfig, pad_id: int) -> None:
    (result.directory / HEADS_FILE).write_text(json.dumps({
        "labels": result.labels, "tags": result.tags, "oos_label": result.oos_label,
        "temperature": result.temperature, "threshold": result.threshold,
        "similarity_threshold": result.similarity_threshold,
        "max_length": config.max_length, "pad_id": pad_id, "model_file": MODEL_FILE,
        "serving": result.serving,
    }, indent=2, ensure_ascii=False))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood."""
    best_t, best_nll = 1.0, math.inf
    for t in np.exp(np.linspace(math.log(0.2), math.log(10.0), 80)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -log_probs[np.arange(len(targets)), targets].mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


MIN_OOS_FOR_BALANCE = 20  # fewer out-of-scope validation examples: too few to trade against


def choose_thresholds(scores: np.ndarray, similarity: np.ndarray | None, correct: np.ndarray,
                      is_oos: np.ndarray, default: float = 0.3) -> tuple[float, float]:
    """Out-of-scope thresholds on the top in-scope probability and on the similarity to the
    nearest in-scope intent centroid (-1 disables the latter).

    With enough out-of-scope validation examples: the pair maximising the mean of in-scope
    accuracy (a rejected in-scope example counts as wrong) and out-of-scope recall. Otherwise:
    the highest probability threshold that rejects at most 2% of correctly classified
    validation examples, and no similarity threshold."""
    if len(scores) == 0:
        return default, -1.0
    grid = np.linspace(0.05, 0.95, 91)
    if is_oos.sum() >= MIN_OOS_FOR_BALANCE and (~is_oos).any():
        sim_grid = [-1.0]
        if similarity is not None:
            sim_grid += list(np.quantile(similarity[~is_oos], np.linspace(0.0, 0.2, 41)))
        accepted_p = scores[None, :] >= grid[:, None]  # [taus, examples]
        best, best_value = (default, -1.0), -1.0
        for sim_tau in sim_grid:
            accepted = accepted_p if similarity is None or sim_tau < 0 \
                else accepted_p & (similarity >= sim_tau)[None, :]
            in_acc = (accepted & correct[None, :])[:, ~is_oos].mean(axis=1)
            recall = (~accepted)[:, is_oos].mean(axis=1)
            value = (in_acc + recall) / 2
            i = int(value.argmax())
            if value[i] > best_value + 1e-9:
                best, best_value = (float(grid[i]), float(sim_tau)), float(value[i])
        return best
    good = np.sort(scores[correct & ~is_oos])
    if len(good) == 0:
        return default, -1.0
    return float(min(0.5, max(0.05, good[int(len(good) * 0.02)] - 1e-6))), -1.0


def calibrate(result: FitResult, train: list[Example], val: list[Example],
              config: TrainConfig) -> None:
    """Serving format (int8 where accuracy holds), temperature, intent centroids and the
    out-of-scope thresholds, from the validation data and the served model itself."""
    from nlu.runtime import CENTROIDS_FILE, OnnxJointModel, quantize

    threads = config.threads or None
    label_index = {label: i for i, label in enumerate(result.labels)}
    known = [e for e in val if e.intent in label_index]
    targets = np.array([label_index[e.intent] for e in known], dtype=np.int64)
    float_model = OnnxJointModel(result.directory, threads=threads)
    served = float_model
    result.serving = {"format": "onnx-fp32"}
    if config.quantize:
        quantized = result.directory / "model.int8.onnx"
        quantize(result.directory / MODEL_FILE, quantized)
        int8_model = OnnxJointModel(result.directory, threads=threads, model_file=quantized.name)
        fp32_acc = int8_acc = None
        if known:
            texts = [e.text for e in known]
            fp32_acc = float((float_model.intent_logits(texts).argmax(1) == targets).mean())
            int8_acc = float((int8_model.intent_logits(texts).argmax(1) == targets).mean())
        keep = fp32_acc is None or int8_acc >= fp32_acc - config.max_quantization_drop
        result.serving = {"format": "onnx-int8" if keep else "onnx-fp32",
                          "val_accuracy_fp32": fp32_acc, "val_accuracy_int8": int8_acc}
        if keep:
            os.replace(quantized, result.directory / MODEL_FILE)
            served = OnnxJointModel(result.directory, threads=threads)
        else:
            quantized.unlink()
    # intent centroids of the training examples (unit vectors), for out-of-scope similarity
    vectors = served.sentence_vectors([e.text for e in train])
    centroids = np.zeros((len(result.labels), vectors.shape[1]), dtype=np.float32)
    for label, i in label_index.items():
        rows = [k for k, e in enumerate(train) if e.intent == label]
        if rows and label != result.oos_label:
            mean = vectors[rows].mean(axis=0)
            centroids[i] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    np.save(result.directory / CENTROIDS_FILE, centroids)
    served.centroids = centroids
    if known:
        logits, vectors = served.intent_logits(
            [e.text for e in known], with_vectors=True)  # type: ignore[misc]
        result.temperature = fit_temperature(logits, targets)
        served.temperature = result.temperature
        scores, predicted = served.in_scope(logits)
        similarity = served.similarity(vectors)
        is_oos = np.array([e.intent == result.oos_label for e in known])
        correct = np.array([result.labels[p] == e.intent
                            for p, e in zip(predicted, known, strict=True)])
        result.threshold, result.similarity_threshold = choose_thresholds(
            scores, similarity, correct, is_oos)
    _write_heads(result, config, served.pad_id)


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
