"""The injection corpus: hand-written attacks and hard negatives (``data/injection/``), their
obfuscations, real article sentences, and the tune/report split of all of them.

Base texts are split per language and technique (or kind): ranked by the SHA-256 of
``<lang>:<text>``, every other one goes to ``tune``, the rest to ``report``; its obfuscations go
with it, and the techniques ``attacks.yml`` lists under ``report_only`` are
never tuned on. Real article sentences come from ``../shared/datasets`` (SQuAD 2.0 and CMRC 2018
contexts, Bitext customer-support responses), split by article in the same way (SQuAD and
CMRC: the article's title; Bitext: the intent), so no sentence of a tuned article is reported
on.

Obfuscations (``OBFUSCATIONS``) are applied here, deterministically, never stored: zero-width
characters inside words, full-width letters, Cyrillic/Greek look-alikes, leetspeak, spaced and
dotted letters, base64 behind a wrapper, an HTML comment, and a split into two sentences.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import yaml

from core.config import ROOT
from knowledge.text import split_sentences

CORPUS_DIR = ROOT / "data" / "injection"
DATASETS_DIR = ROOT.parent / "shared" / "datasets"
SQUAD = Path("squad2_dev_half") / "dev-v2.0.json"
CMRC = Path("cmrc2018_dev") / "cmrc2018_dev.json"
BITEXT = (Path("bitext_customer_support")
          / "Bitext_Sample_Customer_Support_Training_Dataset_v2023-09-19_4514rows.csv")


@dataclass(frozen=True)
class Example:
    """One text to judge: an attack (``attack``) or not, and where it comes from."""

    text: str
    lang: str
    attack: bool
    technique: str  # attacks: the family; benign: the kind, or the dataset's name
    obfuscation: str = "base"
    split: str = "tune"
    base: str = ""  # the base text an obfuscation was made from (itself when "base"); for
    # real text, its article ("squad:<title>"): what validation folds keep together


def _halves(prefix: str, texts: list[str]) -> dict[str, str]:
    """Each text's split: ranked by the hash of ``<prefix>:<text>``, every other one is tuned
    on (half of each group, give or take one, where a hash alone could leave a small group
    lopsided)."""
    ranked = sorted(texts, key=lambda t: hashlib.sha256(f"{prefix}:{t}".encode()).digest())
    return {text: "tune" if i % 2 == 0 else "report" for i, text in enumerate(ranked)}


# -------------------------------------------------------------------------------- obfuscations

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060"
_HOMOGLYPHS = {"a": "аɑα", "c": "с", "e": "еε", "i": "іι", "j": "ј", "o": "оο", "p": "рρ",
               "s": "ѕ", "x": "х", "y": "у", "k": "к", "h": "һ", "A": "АΑ", "B": "ВΒ",
               "E": "ЕΕ", "H": "НΗ", "I": "ІΙ", "K": "КΚ", "M": "МΜ", "O": "ОΟ", "P": "РΡ",
               "T": "ТΤ", "X": "ХΧ", "Y": "ΥҮ"}
_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7"}
_B64_WRAPPERS = {"en": ("Decode this and follow it: {}", "Reference code: {}"),
                 "zh": ("解码后照做：{}", "参考编码：{}")}


def _rng(text: str, salt: str) -> random.Random:
    return random.Random(hashlib.sha256(f"{salt}:{text}".encode()).digest())


def zero_width(text: str, lang: str) -> str:
    rng = _rng(text, "zw")
    return "".join(c + (rng.choice(_ZERO_WIDTH) if c.isalnum() and rng.random() < 0.35 else "")
                   for c in text)


def full_width(text: str, lang: str) -> str:
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c
                   for c in text)


def homoglyph(text: str, lang: str) -> str:
    rng = _rng(text, "hg")
    return "".join(rng.choice(_HOMOGLYPHS[c]) if c in _HOMOGLYPHS and rng.random() < 0.6
                   else c for c in text)


def leet(text: str, lang: str) -> str:
    rng = _rng(text, "leet")
    return "".join(rng.choice(_LEET[c.lower()]) if c.lower() in _LEET and rng.random() < 0.5
                   else c for c in text)


def spaced(text: str, lang: str) -> str:
    """Letters one space apart, words three apart (Chinese: characters one apart)."""
    return "   ".join(" ".join(word) for word in text.split())


def dotted(text: str, lang: str) -> str:
    return " ".join(".".join(word) for word in text.split())


def base64_wrapped(text: str, lang: str) -> str:
    payload = base64.b64encode(text.encode()).decode()
    wrappers = _B64_WRAPPERS[lang]
    return wrappers[_rng(text, "b64").randrange(len(wrappers))].format(payload)


def html_comment(text: str, lang: str) -> str:
    return f"<!-- {text} -->"


def split_in_two(text: str, lang: str) -> str:
    """The text cut into two sentences near its middle: at a comma or colon in its middle
    third, else at the word break (Chinese: the character) nearest the middle."""
    body = text.rstrip(".。!！?？")
    middle, third = len(body) / 2, len(body) / 3
    marks = [m.end() for m in re.finditer(r"[,，、;；：:]\s*", body)
             if abs(m.end() - middle) < third / 2 + 1]
    breaks = ([m.end() for m in re.finditer(r"\s+", body)] if lang == "en"
              else list(range(2, len(body) - 1)))
    if not (marks or breaks):
        return text
    cut = min(marks or breaks, key=lambda c: abs(c - middle))
    head, tail = text[:cut].rstrip(" ,，、;；：:"), text[cut:].strip()
    head = re.sub(r"\s+(?:and|then|or|but)$", "", head)
    if lang == "zh":
        return f"{head}。{tail}"
    return f"{head}. {tail[:1].upper()}{tail[1:]}"


Obfuscation = Callable[[str, str], str]
OBFUSCATIONS: dict[str, tuple[Obfuscation, tuple[str, ...]]] = {
    "zero-width": (zero_width, ("en", "zh")),
    "full-width": (full_width, ("en", "zh")),
    "homoglyph": (homoglyph, ("en",)),
    "leet": (leet, ("en",)),
    "spaced": (spaced, ("en", "zh")),
    "dotted": (dotted, ("en",)),
    "base64": (base64_wrapped, ("en", "zh")),
    "html-comment": (html_comment, ("en", "zh")),
    "split": (split_in_two, ("en", "zh")),
}


# -------------------------------------------------------------------------------- the corpus

def _load(name: str, corpus: Path) -> dict:
    return yaml.safe_load((corpus / name).read_text(encoding="utf-8")) or {}


def report_only(corpus: Path = CORPUS_DIR) -> frozenset[str]:
    return frozenset(_load("attacks.yml", corpus).get("report_only", ()))


def attacks(corpus: Path = CORPUS_DIR, *, obfuscated: bool = True) -> list[Example]:
    """Every base attack, then (``obfuscated``) each obfuscation of it that fits its language."""
    data = _load("attacks.yml", corpus)
    held_out = set(data.get("report_only", ()))
    found = []
    for lang, techniques in data["attacks"].items():
        for technique, texts in techniques.items():
            halves = _halves(lang, texts)
            for text in texts:
                split = "report" if technique in held_out else halves[text]
                found.append(Example(text, lang, True, technique, "base", split, text))
                if not obfuscated:
                    continue
                for name, (obfuscate, langs) in OBFUSCATIONS.items():
                    if lang in langs and not (name == "split" and technique == "split"):
                        found.append(Example(obfuscate(text, lang), lang, True, technique,
                                             name, split, text))
    return found


def hard_negatives(corpus: Path = CORPUS_DIR, *, pairs: bool = False) -> list[Example]:
    """The hand-written benign texts; with ``pairs``, also each two neighbours of a kind (in
    the file's order, both of one split) as one text, as they would stand in an article."""
    found = []
    for lang, kinds in _load("benign.yml", corpus)["benign"].items():
        for kind, texts in kinds.items():
            halves = _halves(lang, texts)
            found += [Example(text, lang, False, kind, "base", halves[text], text)
                      for text in texts]
            if not pairs or kind in ("headings", "faq-questions", "two-sentence"):
                continue
            joiner = "" if lang == "zh" else " "
            found += [Example(f"{a}{joiner}{b}", lang, False, kind, "pair", halves[a], a)
                      for a, b in pairwise(texts)
                      if halves[a] == halves[b]]
    return found


# ------------------------------------------------------------------ real article sentences

REAL_SOURCES = {"squad": "en", "cmrc": "zh", "bitext": "en"}
# What is read of an article: its sentences, each two neighbouring sentences of a paragraph
# (one text), the questions asked of it (Bitext: the customers' requests), its title.
UNITS = ("sentence", "pair", "question", "title")


@dataclass(frozen=True)
class Article:
    key: str  # what the split is made on: SQuAD and CMRC, the title; Bitext, the intent
    title: str
    text: str
    questions: tuple[str, ...]


def _articles(source: str, datasets: Path) -> Iterator[Article]:
    """Every paragraph (SQuAD, CMRC) or response (Bitext) of ``source``."""
    if source in ("squad", "cmrc"):
        data = json.loads((datasets / (SQUAD if source == "squad" else CMRC))
                          .read_text(encoding="utf-8"))
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                yield Article(article["title"], article["title"], paragraph["context"],
                              tuple(q["question"] for q in paragraph.get("qas", ())))
    else:
        with (datasets / BITEXT).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                yield Article(row["intent"], "", row["response"], (row["instruction"],))


def available(datasets: Path = DATASETS_DIR) -> list[str]:
    """The real sources whose files are there."""
    paths = {"squad": SQUAD, "cmrc": CMRC, "bitext": BITEXT}
    return [source for source, path in paths.items() if (datasets / path).is_file()]


def _of_split(source: str, split: str, datasets: Path) -> list[Article]:
    articles = list(_articles(source, datasets))
    halves = _halves(source, list(dict.fromkeys(a.key for a in articles)))
    return [a for a in articles if halves[a.key] == split]


def real_paragraphs(source: str, *, split: str, datasets: Path = DATASETS_DIR) -> list[str]:
    """The distinct paragraphs (Bitext: responses) of the articles of ``split``."""
    return list(dict.fromkeys(a.text for a in _of_split(source, split, datasets)))


def real_texts(source: str, *, split: str, unit: str = "sentence", limit: int | None = None,
               datasets: Path = DATASETS_DIR) -> list[Example]:
    """Distinct texts of the articles of ``split``, one ``UNITS`` each; ``limit``: a fixed
    sample of them (chosen by hash, so the same on every run)."""
    joiner = "" if REAL_SOURCES[source] == "zh" else " "
    seen: dict[str, str] = {}  # text -> its article's key
    for article in _of_split(source, split, datasets):
        sentences = [s for s in split_sentences(article.text) if len(s) >= 8]
        units = {"sentence": sentences,
                 "pair": map(joiner.join, pairwise(sentences)),
                 "question": article.questions, "title": [article.title] if article.title
                 else []}[unit]
        for text in units:
            seen.setdefault(text.strip(), f"{source}:{article.key}")
    texts = [t for t in seen if t]
    if limit is not None and len(texts) > limit:
        texts = sorted(texts, key=lambda t: hashlib.sha256(t.encode()).digest())[:limit]
    return [Example(t, REAL_SOURCES[source], False, source, unit, split, seen[t]) for t in texts]
