"""Public NLU benchmarks as Parley ``Example`` lists, read from ../shared/datasets (or
``PARLEY_DATASETS``). Nothing is copied into the project.

Each loader returns ``(train, validation, test)``. Where a dataset has no validation split,
a seeded stratified share of its training split is held out (so the test split is never seen).
"""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

from nlu.data import Entity, Example
from nlu.finetune import split_validation

ROOT = Path(__file__).resolve().parents[1]
Splits = tuple[list[Example], list[Example], list[Example]]


def datasets_dir() -> Path:
    return Path(os.environ.get("PARLEY_DATASETS", ROOT.parent / "shared" / "datasets"))


def _csv_examples(path: Path) -> list[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [Example(row["text"].strip(), row["category"].strip())
                for row in csv.DictReader(handle)]


def banking77(val_fraction: float = 0.05, seed: int = 13) -> Splits:
    folder = datasets_dir() / "banking77"
    train, val = split_validation(_csv_examples(folder / "train.csv"), val_fraction, seed)
    return train, val, _csv_examples(folder / "test.csv")


def clinc150() -> Splits:
    """The full CLINC150 setting; out-of-scope examples carry the intent ``oos``."""
    data = json.loads((datasets_dir() / "clinc150" / "data_full.json").read_text())

    def part(*names: str) -> list[Example]:
        return [Example(text, intent) for name in names for text, intent in data[name]]

    return part("train", "oos_train"), part("val", "oos_val"), part("test", "oos_test")


def _bio_examples(folder: Path) -> list[Example]:
    words_lines = (folder / "seq.in").read_text(encoding="utf-8").splitlines()
    tag_lines = (folder / "seq.out").read_text(encoding="utf-8").splitlines()
    labels = (folder / "label").read_text(encoding="utf-8").splitlines()
    examples = []
    for words_line, tag_line, label in zip(words_lines, tag_lines, labels, strict=True):
        words, tags = words_line.split(), tag_line.split()
        text, entities, offset = [], [], 0
        current: list = []
        for word, tag in zip(words, tags, strict=True):
            start = offset
            text.append(word)
            offset += len(word) + 1
            if tag.startswith("B-") or (tag.startswith("I-") and not current) or tag == "O":
                if current:
                    entities.append(current)
                current = [tag[2:], start, start + len(word)] if tag != "O" else []
            else:
                current[2] = start + len(word)
        if current:
            entities.append(current)
        sentence = " ".join(text)
        examples.append(Example(sentence, label.strip(), tuple(
            Entity(s, e, name, sentence[s:e]) for name, s, e in entities)))
    return examples


def snips() -> Splits:
    folder = datasets_dir() / "snips"
    return (_bio_examples(folder / "train"), _bio_examples(folder / "valid"),
            _bio_examples(folder / "test"))


BITEXT_FILE = "Bitext_Sample_Customer_Support_Training_Dataset_v2023-08-18_6480rows.csv"


def bitext(seed: int = 13) -> Splits:
    """Bitext customer support (27 intents, annotated entities). No official split: a seeded
    stratified 70/10/20 split. Annotations whose offsets do not match the text are re-found in
    the text, or dropped when absent or only part of a longer word (``4587345`` annotated in
    ``00004587345``)."""
    path = datasets_dir() / "bitext_customer_support" / BITEXT_FILE
    examples = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = row["instruction"].strip()
            entities: tuple[Entity, ...] = ()
            value = row["entity_value"].strip()
            if row["entity_type"] and value:
                start = text.find(value)
                end = start + len(value)
                inside_a_word = start >= 0 and (
                    (start > 0 and text[start - 1].isalnum())
                    or (end < len(text) and text[end].isalnum()))
                if start >= 0 and not inside_a_word:
                    entities = (Entity(start, end, row["entity_type"], value),)
            examples.append(Example(text, row["intent"].strip(), entities))
    rest, test = split_validation(examples, 0.2, seed)
    random.Random(seed).shuffle(rest)
    train, val = split_validation(rest, 0.125, seed)
    return train, val, test


LOADERS = {"banking77": banking77, "clinc150": clinc150, "snips": snips, "bitext": bitext}
