"""A small bilingual lexicon for *clearly* negative customer messages.

It is deliberately conservative: one angry word is not enough on its own unless it is strong;
negated words ("not bad") do not count. It triggers a hand-off, it does not grade moods.
"""

from __future__ import annotations

import re

STRONG_EN = {"furious", "outraged", "disgusting", "unacceptable", "ridiculous", "scam",
             "fraud", "worst", "pathetic", "useless", "horrible", "terrible", "awful",
             "rip-off", "ripoff", "lawyer", "sue", "incompetent", "livid", "fed up", "sick of",
             "waste of time", "never again", "hate"}
MILD_EN = {"angry", "annoyed", "upset", "frustrated", "disappointed", "bad", "poor", "broken",
           "late", "stupid", "rude", "slow", "wrong", "unhappy", "unhelpful"}
STRONG_ZH = {"气死", "太差", "垃圾", "骗子", "欺诈", "投诉", "恶心", "无语", "忍无可忍", "坑人",
             "太过分", "最差", "骗人", "退钱", "差评", "受够了", "什么破", "废物"}
MILD_ZH = {"生气", "失望", "不满", "很慢", "太慢", "糟糕", "烦", "不行", "没用", "不靠谱", "郁闷"}
NEGATIONS_EN = {"not", "no", "never", "isn't", "wasn't", "aren't", "don't", "didn't", "hardly"}
NEGATIONS_ZH = ("不", "没", "别")
_WORD = re.compile(r"[a-z][a-z'-]*")


def negativity(text: str) -> float:
    """0 (neutral) .. 1 (clearly negative)."""
    lowered = text.lower()
    score = 0.0
    words = _WORD.findall(lowered)
    for i, word in enumerate(words):
        negated = any(w in NEGATIONS_EN for w in words[max(0, i - 2):i])
        if word in STRONG_EN and not negated:
            score += 0.6
        elif word in MILD_EN and not negated:
            score += 0.25
    for phrase in (p for p in STRONG_EN if " " in p or "-" in p):
        if phrase in lowered:
            score += 0.6
    for phrase in STRONG_ZH:
        if phrase in text:
            score += 0.6
    for phrase in MILD_ZH:
        start = text.find(phrase)
        if start >= 0 and not text[max(0, start - 1):start].endswith(NEGATIONS_ZH):
            score += 0.25
    if text.count("!") + text.count("！") >= 3:
        score += 0.2
    letters = [c for c in text if c.isalpha() and c.isascii()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.8:
        score += 0.3  # shouting
    return min(score, 1.0)


def clearly_negative(text: str, threshold: float = 0.6) -> bool:
    return negativity(text) >= threshold
