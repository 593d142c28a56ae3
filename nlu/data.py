"""Training data: Rasa NLU YAML (with entity annotations) and CSV (``text,intent``).

Both load into the same ``Example`` list; errors name the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nlu.errors import TrainingDataError

# [value](entity), [value](entity:synonym), [value]{"entity": "x", "value": "y"}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<simple>[^)]+)\)|(?P<json>\{[^}]*\}))")


@dataclass(frozen=True)
class Entity:
    """An entity in a text, the one span type of the NLU: annotated training data, pattern and
    gazetteer matches and the model's predictions. ``text[start:end]`` is what was written,
    ``value`` what it stands for (``PL-204817`` for "pl 204817"); ``extractor`` and
    ``confidence`` say who found it, and how sure it was."""

    start: int
    end: int
    entity: str
    value: str
    extractor: str = ""
    confidence: float = 1.0

    def to_rasa(self) -> dict[str, object]:
        return {"entity": self.entity, "start": self.start, "end": self.end, "value": self.value,
                "confidence_entity": round(self.confidence, 4), "extractor": self.extractor}


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: tuple[Entity, ...] = field(default_factory=tuple)


def parse_annotated(line: str) -> tuple[str, tuple[Entity, ...]]:
    """Turn ``where is [PL-204817](order_id)`` into plain text plus entity spans."""
    out: list[str] = []
    entities: list[Entity] = []
    cursor = 0
    length = 0
    for match in _ANNOTATION.finditer(line):
        before = line[cursor:match.start()]
        out.append(before)
        length += len(before)
        value_text = match.group("text")
        if match.group("simple"):
            name, _, synonym = match.group("simple").partition(":")
            value = synonym or value_text
        else:
            spec = json.loads(match.group("json"))
            name, value = spec["entity"], spec.get("value", value_text)
        entities.append(Entity(length, length + len(value_text), name.strip(), value))
        out.append(value_text)
        length += len(value_text)
        cursor = match.end()
    out.append(line[cursor:])
    return "".join(out), tuple(entities)


def _load_yaml(path: Path) -> list[Example]:
    raw = path.read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise TrainingDataError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(doc, dict):
        raise TrainingDataError(f"{path}:1: expected Rasa NLU data (a mapping with `nlu:`)")
    lines = raw.splitlines()
    examples: list[Example] = []
    for block in doc.get("nlu", []) or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue  # synonyms, regexes and lookups are not intent examples
        intent = str(block["intent"]).strip()
        line_no = _line_of(lines, f"intent: {intent}")
        body = block.get("examples") or ""
        items = [ln.strip()[2:].strip() for ln in str(body).splitlines()
                 if ln.strip().startswith("- ")]
        if not intent:
            raise TrainingDataError(f"{path}:{line_no}: an intent has no name")
        if not items:
            raise TrainingDataError(f"{path}:{line_no}: intent '{intent}' has no examples")
        for item in items:
            try:
                text, entities = parse_annotated(item)
            except (json.JSONDecodeError, KeyError) as exc:
                raise TrainingDataError(
                    f"{path}:{_line_of(lines, item)}: bad entity annotation in {item!r}") from exc
            examples.append(Example(text, intent, entities))
    return examples


def _line_of(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines, 1):
        if needle in line:
            return i
    return 0


def _load_csv(path: Path) -> list[Example]:
    examples: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise TrainingDataError(f"{path}:1: empty CSV file")
        columns = [h.strip().lower() for h in header]
        label = "intent" if "intent" in columns else "category" if "category" in columns else None
        if "text" not in columns or label is None:
            raise TrainingDataError(f"{path}:1: the header must name 'text' and 'intent' columns")
        t_idx, i_idx = columns.index("text"), columns.index(label)
        for line_no, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) <= max(t_idx, i_idx):
                raise TrainingDataError(f"{path}:{line_no}: expected {len(columns)} columns")
            text, intent = row[t_idx].strip(), row[i_idx].strip()
            if not text or not intent:
                raise TrainingDataError(f"{path}:{line_no}: empty text or intent")
            examples.append(Example(text, intent))
    return examples


def data_files(path: str | Path) -> list[Path]:
    """The ``*.yml``/``*.yaml``/``*.csv`` files of ``path`` (a file or a folder)."""
    root = Path(path)
    if not root.exists():
        raise TrainingDataError(f"{root}: no such file or folder")
    return [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix.lower() in {".yml", ".yaml", ".csv"})


def load_examples(path: str | Path | Sequence[str | Path]) -> list[Example]:
    """Load every ``*.yml``/``*.yaml``/``*.csv`` under ``path`` (a file, a folder, or several)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    examples: list[Example] = []
    for file in (f for p in paths for f in data_files(p)):
        loader = _load_csv if file.suffix.lower() == ".csv" else _load_yaml
        examples.extend(loader(file))
    where = ", ".join(str(p) for p in paths)
    if not examples:
        raise TrainingDataError(f"{where}: no training examples found")
    counts = Counter(e.intent for e in examples)
    if len(counts) < 2:
        raise TrainingDataError(f"{where}: at least two intents are needed, found {sorted(counts)}")
    return examples


def data_hash(examples: list[Example]) -> str:
    """A short digest of the training data: texts, intents and each entity's
    ``(start, end, entity, value)``. ``extractor`` and ``confidence`` say nothing about the
    data and are left out, so the digest is the one earlier versions computed (a checkpoint
    trained on the same data still matches it)."""
    digest = hashlib.sha256()
    for example in examples:
        hashed = {"text": example.text, "intent": example.intent,
                  "entities": [{"start": e.start, "end": e.end, "entity": e.entity,
                                "value": e.value} for e in example.entities]}
        digest.update(json.dumps(hashed, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:16]
