"""The torch network that fine-tuning trains: one pretrained encoder, two heads.

The intent head reads the mean-pooled sentence, the entity head reads every token; the
forward pass returns ``(intent_logits, tag_logits, sentence)``, the outputs the ONNX export
names. An ensemble is one module with the same outputs. torch and transformers are imported
only when a network is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def joint_model(base_dir: Path, *, n_intents: int, n_tags: int, layers: int,
                freeze_word_embeddings: bool) -> Any:
    """The encoder in ``base_dir`` (its first ``layers`` layers; 0 keeps them all) with fresh
    heads, using SDPA attention for training (see ``set_attention`` before exporting)."""
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # unused layers of a truncated encoder are expected
    hf_logging.disable_progress_bar()
    encoder_config = AutoConfig.from_pretrained(base_dir)
    if layers:
        encoder_config.num_hidden_layers = min(layers, encoder_config.num_hidden_layers)
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
    if freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    torch.nn.init.normal_(model.intent_head.weight, std=0.02)
    torch.nn.init.zeros_(model.intent_head.bias)
    return model


def set_attention(model: Any, implementation: str) -> None:
    """Switch the encoder's attention ("eager" exports cleanly to ONNX)."""
    try:
        model.encoder.set_attn_implementation(implementation)
    except (AttributeError, ValueError):
        model.encoder.config._attn_implementation = implementation


def ensemble(members: list[Any], *, shared_word_embeddings: bool) -> Any:
    """One module that averages the members' intent and tag logits; its sentence vector joins
    the members' unit vectors, so its cosine similarity is the members' mean. A frozen word
    embedding table is the same in every member and is stored once
    (``shared_word_embeddings``)."""
    import torch
    from torch import nn

    if shared_word_embeddings:
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
