"""The questions of a knowledge-base evaluation, and what counts as a right reply.

A questions file is JSONL, one object a line (blank lines are skipped)::

    {"question": str, "answers": [str, ...], "lang"?: "en" | "zh", "source"?: document id}

``answers: []`` marks a question the knowledge base cannot answer: the right reply abstains.
Other keys are ignored. A malformed line raises ``InvalidQuestions`` naming ``file:line``.

A reply is right when, after ``normalise`` (NFKC, case folded, punctuation removed, whitespace
collapsed), it contains one of the answers as a whole: an answer that starts or ends with a
letter or digit must not continue a word of the reply ("30" is not in "300 days"; Chinese has
no word boundaries, so a Chinese edge matches anywhere).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import Unprocessable
from knowledge.errors import KnowledgeError

LANGS = ("en", "zh")
_SPACE = re.compile(r"\s+")


class InvalidQuestions(KnowledgeError, Unprocessable):
    code = "invalid_questions"


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]  # () = unanswerable
    lang: str | None = None
    source: str | None = None  # the document id that holds the answer

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("P"))
    return _SPACE.sub(" ", kept).strip()


def _wordy(ch: str) -> bool:
    """A letter or digit of a script that separates words with spaces."""
    return ch.isalnum() and not unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA",
                                                                      "KATAKANA"))


def _contains(text: str, part: str) -> bool:
    start = text.find(part)
    while start >= 0:
        end = start + len(part)
        before = start == 0 or not (_wordy(text[start - 1]) and _wordy(part[0]))
        after = end == len(text) or not (_wordy(text[end]) and _wordy(part[-1]))
        if before and after:
            return True
        start = text.find(part, start + 1)
    return False


def is_right(reply: str, answers: Sequence[str]) -> bool:
    """Whether ``reply`` states one of ``answers`` (never, for an unanswerable question)."""
    said = normalise(reply)
    return any(_contains(said, wanted) for a in answers if (wanted := normalise(a)))


def _question(raw: Any, where: str) -> Question:
    if not isinstance(raw, dict):
        raise InvalidQuestions(f"{where}: expected a JSON object")
    text = raw.get("question")
    if not isinstance(text, str) or not text.strip():
        raise InvalidQuestions(f"{where}: 'question' must be a non-empty string")
    answers = raw.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise InvalidQuestions(f"{where}: 'answers' must be a list of strings ([] when the "
                               "knowledge base cannot answer)")
    if any(not normalise(a) for a in answers):
        raise InvalidQuestions(f"{where}: an answer is empty once punctuation is removed")
    lang = raw.get("lang")
    if lang is not None and lang not in LANGS:
        raise InvalidQuestions(f"{where}: 'lang' must be one of {', '.join(LANGS)}")
    source = raw.get("source")
    if source is not None and (not isinstance(source, str) or not source):
        raise InvalidQuestions(f"{where}: 'source' must be a document id")
    return Question(text.strip(), tuple(answers), lang, source)


def load_questions(path: Path) -> list[Question]:
    """Every question of a JSONL file, in order."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidQuestions(f"{path}: cannot read the questions ({exc})") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidQuestions(f"{path}:{number}: not JSON ({exc.msg})") from exc
        questions.append(_question(raw, f"{path}:{number}"))
    if not questions:
        raise InvalidQuestions(f"{path}: no questions")
    return questions
