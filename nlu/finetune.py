"""Fine-tune a pretrained transformer encoder end to end for intents and BIO entities.

``fit`` trains the network of ``nlu.network`` (one encoder, an intent and an entity head, or
an ensemble of them), exports it to ONNX (``nlu.export``: int8 only where validation accuracy
holds) and calibrates the served model on validation data (``nlu.calibration``: temperature,
out-of-scope thresholds).

How many epochs it trains depends on the size of the data (``nlu.schedule``): at most
``epochs``, fewer for large data so that the example passes stay within ``example_budget``.
Training is seeded and resumable: a checkpoint is written after every epoch into a work folder
named by the data and the configuration, and a rerun continues from the last one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nlu import tagging
from nlu.calibration import calibrate
from nlu.data import Example
from nlu.encoders import DEFAULT_BASE, resolve_base
from nlu.export import FitResult, export_onnx, settle_format, write_heads
from nlu.network import ensemble, joint_model, set_attention
from nlu.runtime import MODEL_FILE, pad
from nlu.schedule import SCHEDULE_RULE, Schedule, plan

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (phase, done, total)
OOS_NAMES = ("out_of_scope", "oos")


@dataclass(frozen=True)
class TrainConfig:
    base: str = DEFAULT_BASE
    layers: int = 0  # keep the first N encoder layers; 0 keeps them all
    epochs: int = 8  # at most; large data trains fewer (example_budget)
    min_epochs: int = 2
    min_steps: int = 120  # small data: more epochs, so that a few examples still train
    example_budget: int = 30_000  # examples x epochs to aim for (0: always ``epochs``)
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
        """Names a trained version: the data, every field, and the schedule rule's revision
        (the epochs follow from those and the data's size)."""
        blob = json.dumps({**asdict(self), "data": data_digest, "schedule": SCHEDULE_RULE},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


PRESETS: dict[str, TrainConfig] = {
    # Two CPU cores: the demo bot (700 examples, 8 epochs) in a few minutes; 10,000 examples
    # (3 epochs) in about ten (docs/benchmarks.md, "NLU training time by data size").
    "demo": TrainConfig(),
    # CI and tests: the same code, a third of the encoder and fewer steps.
    "fast": TrainConfig(layers=4, epochs=6, min_steps=80, batch_size=16, learning_rate=1.5e-4,
                        head_learning_rate=3e-3, max_length=48),
    # Benchmarks (thousands of examples; meant for a GPU): every epoch, whatever the size.
    "full": TrainConfig(epochs=10, min_steps=0, example_budget=0, batch_size=32,
                        learning_rate=8e-5, head_learning_rate=2e-3, max_length=64),
}


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
    model = trained[0] if len(trained) == 1 else ensemble(
        trained, shared_word_embeddings=config.freeze_word_embeddings)
    export_onnx(model.to("cpu").eval(), export / MODEL_FILE, data.pad_id)
    shutil.copy(data.base_dir / "tokenizer.json", export / "tokenizer.json")
    result = FitResult(export, data.labels, data.tags, data.oos_label, 1.0, 0.3)
    write_heads(result, max_length=config.max_length, pad_id=data.pad_id)
    progress("exporting", 1, 1)
    progress("calibrating", 0, 1)
    served = settle_format(result, val, int8=config.quantize,
                           max_drop=config.max_quantization_drop, threads=config.threads or None)
    calibrate(result, served, train, val)
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
    steps = training_schedule(config, len(data.encodings)).steps
    trained = []
    for position, member in enumerate(members):
        def member_progress(phase: str, done: int, total: int, offset: int = position) -> None:
            progress(phase, offset * steps + done, len(members) * steps)
        trained.append(_train_member(
            data, config, seed=config.seed + member,
            workdir=workdir if config.members == 1 else workdir / f"member-{member}",
            progress=member_progress))
    return trained


def training_schedule(config: TrainConfig, n_examples: int) -> Schedule:
    """How many epochs and steps ``config`` trains on ``n_examples`` (``nlu.schedule``)."""
    return plan(n_examples, batch_size=config.batch_size, epochs=config.epochs,
                min_epochs=config.min_epochs, min_steps=config.min_steps,
                example_budget=config.example_budget)


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
    model = joint_model(data.base_dir, n_intents=len(data.labels), n_tags=n_tags,
                        layers=config.layers,
                        freeze_word_embeddings=config.freeze_word_embeddings).to(device)
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters()
            if n.startswith("encoder.") and p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": body, "lr": config.learning_rate},
        {"params": heads, "lr": config.head_learning_rate},
    ], weight_decay=config.weight_decay, fused=True)
    autocast_dtype = torch.bfloat16 if _precision(config, device) == "bf16" else None
    schedule = training_schedule(config, len(data.encodings))
    steps_per_epoch, epochs, total = schedule.steps_per_epoch, schedule.epochs, schedule.steps
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
    set_attention(model, "eager")  # exports cleanly to ONNX
    return model


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


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
