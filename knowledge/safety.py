"""Keep instructions hidden in documents out of the answer's sources.

A knowledge base is written by many hands and may quote untrusted text. Sentences that try
to instruct the assistant (\"ignore previous instructions\", \"reveal your system prompt\",
\"你现在是…\") are dropped from a source before it reaches the generator or the gate, so
they can neither steer the answer nor be quoted as fact.
"""

from __future__ import annotations

import re

from knowledge.text import split_sentences

_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|rule|prompt|previous|above|"
    r"prior)",
    r"\b(system|developer)\s+(prompt|message|note|instruction)",
    r"\b(reveal|print|show|repeat|output)\b.{0,30}\b(prompt|instruction|rules)\b",
    r"\byou are now\b|\bact as\b|\bpretend to be\b|\bjailbreak\b",
    r"\b(tell|inform) the (customer|user) that\b",
    r"忽略.{0,10}(指令|指示|规则|提示)", r"(系统|开发者)(提示|指令)", r"你现在是", r"扮演",
    r"(输出|显示|透露|泄露).{0,10}(提示词|指令|规则)", r"告诉(客户|用户|顾客)",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE | re.S)


def looks_like_instruction(sentence: str) -> bool:
    return bool(_INJECTION.search(sentence))


def without_instructions(text: str) -> tuple[str, int]:
    """The text minus instruction-like sentences, and how many were removed."""
    kept, removed = [], 0
    for sentence in split_sentences(text):
        if looks_like_instruction(sentence):
            removed += 1
        else:
            kept.append(sentence)
    return "\n".join(kept), removed
