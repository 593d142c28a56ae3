"""Bilingual analysis for the embedded index, the same on the index and the query side.

English (and any other non-CJK script): NFKC, case-folded words; a word with a digit in it
(``PL-204817``, ``v2.1``, ``2024``) is kept whole; other words are split at ``-_./``, a small
stop-word list is dropped and a light suffix stemmer maps ``returns``, ``returned``,
``returning`` to ``return``. Chinese: jieba's search segmentation plus every character bigram
of each run, so a two-character word (无线) always matches a longer compound (无线耳机).
Deterministic: the same text always gives the same tokens.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any

ANALYZER_VERSION = 1
"""Bumped whenever the output changes: an index built by another version is re-tokenised."""

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A run of Chinese characters, or a word (letters and digits of any other script) optionally
# joined to more by one of -_./ (ids, versions, decimals).
TOKEN_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+(?:[-_./][^\W_{_CJK}]+)*)")
_PART = re.compile(rf"[^\W_{_CJK}]+")
CJK_RUN = re.compile(rf"[{_CJK}]+")
_DIGIT = re.compile(r"\d")

STOP_WORDS = frozenset(
    "a an and are as at be been being but by can could did do does for from had has have he "
    "her him his i if in into is it its me my no not of on or our she so such than that the "
    "their them then there these they this those to too us was we were what which who whom "
    "will with would you your".split()
)
ZH_STOP_WORDS = frozenset(
    "的 了 是 在 和 与 或 吗 呢 吧 啊 我 你 他 她 它 们 么 之 也 就 都".split()
)

_jieba: Any = None
_jieba_lock = threading.Lock()


def _segmenter() -> Any:
    """jieba, imported and its dictionary loaded on first use (about a second)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(60)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def stem(word: str) -> str:
    """A conservative suffix stripper: plurals, then -ing/-ed, then a final -e."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    else:
        for suffix in ("ing", "ed"):
            base = word[: -len(suffix)]
            if word.endswith(suffix) and len(base) >= 3 and any(c in "aeiouy" for c in base):
                word = base
                if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeioulsz":
                    word = word[:-1]  # shipped -> shipp -> ship
                break
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]  # charge, charged, charging -> charg
    return word


@lru_cache(maxsize=200_000)
def word_tokens(word: str) -> tuple[str, ...]:
    """Tokens of one normalised non-CJK word (as matched by ``TOKEN_RUNS``)."""
    if _DIGIT.search(word):
        return (word,)
    return tuple(stem(part) for part in _PART.findall(word)
                 if part not in STOP_WORDS and (len(part) > 1 or not part.isascii()))


@lru_cache(maxsize=20_000)
def cjk_tokens(run: str) -> tuple[str, ...]:
    """jieba's search segmentation of a run of Chinese characters, then its bigrams."""
    if len(run) == 1:
        return () if run in ZH_STOP_WORDS else (run,)
    words = [w for w in _segmenter().lcut_for_search(run) if w not in ZH_STOP_WORDS]
    return (*words, *(run[i : i + 2] for i in range(len(run) - 1)))


def analyze(text: str) -> list[str]:
    """Every token of ``text`` in order, repeats kept (they count as term frequency)."""
    tokens: list[str] = []
    for cjk, word in TOKEN_RUNS.findall(normalize(text)):
        tokens += cjk_tokens(cjk) if cjk else word_tokens(word)
    return tokens


def query_terms(text: str, limit: int = 64) -> list[str]:
    """The distinct tokens of a query, in order of first appearance, at most ``limit``."""
    return list(dict.fromkeys(analyze(text)))[:limit]
