"""The answer without a language model: the source sentences that best match the question.

Always available and, by construction, every sentence is a sentence of a source.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from knowledge.embeddings import Embedder
from knowledge.generator.protocol import ChatMessage
from knowledge.text import content_terms, split_sentences

MEANING_WEIGHT = 10.0  # e5 cosines of related sentences differ by only a few hundredths
SENTENCE_END = (".", "!", "。", "！", ")", "）", "”", '"')
SOURCE_LINE = re.compile(r"^\[(\d+)\]\s+(.*)$")


def extract_answer(question: str, sources: list[tuple[int, str]], *, max_sentences: int = 2,
                   embedder: Embedder | None = None, candidates: int = 8
                   ) -> list[tuple[int, str]]:
    """Pick up to ``max_sentences`` (source number, sentence) pairs, best first.

    Candidates are whole sentences sharing a content word with the question; with an
    embedder they are ranked by meaning (e5 cosine) as well as by shared words, since
    "which payment methods do you accept" shares more words with a sentence about *changing*
    the payment method than with "We accept Visa, Mastercard…".
    """
    wanted = content_terms(question)
    scored: list[tuple[float, int, str]] = []
    for rank, (number, text) in enumerate(sources):
        for position, sentence in enumerate(split_sentences(text)):
            terms = content_terms(sentence)
            if len(terms) < 3 or not sentence.endswith(SENTENCE_END):
                continue  # headings, lead-ins ("…:") and questions are not answers
            overlap = len(wanted & terms)
            if overlap == 0:
                continue
            # Retrieval already ranked the sources: the best source wins unless another
            # sentence matches clearly better; early sentences lead.
            score = overlap / len(wanted) + 0.6 / (1 + rank) - 0.02 * position
            scored.append((score, number, sentence))
    scored.sort(key=lambda item: item[0], reverse=True)
    scored = scored[:candidates]
    if embedder is not None and len(scored) > 1:
        asked = embedder.embed([question], query=True)[0]
        similarity = embedder.embed([s for _, _, s in scored]) @ asked
        scored = sorted(((score + MEANING_WEIGHT * float(sim), number, sentence)
                         for (score, number, sentence), sim in zip(scored, similarity,
                                                                    strict=True)),
                        key=lambda item: item[0], reverse=True)
    picked: list[tuple[int, str]] = []
    for _, number, sentence in scored:
        if any(sentence in chosen or chosen in sentence for _, chosen in picked):
            continue
        picked.append((number, sentence))
        if len(picked) == max_sentences:
            break
    return picked


def parse_prompt(messages: list[ChatMessage]) -> tuple[str, list[tuple[int, str]]]:
    """Recover the question and the numbered sources from the prompt the answer flow builds:
    blocks of ``[n] title`` followed by the source's text lines."""
    user = next(m.content for m in reversed(messages) if m.role == "user")
    body, _, question = user.rpartition("\nQuestion:")
    sources: list[tuple[int, list[str]]] = []
    for line in body.splitlines():
        if match := SOURCE_LINE.match(line.strip()):
            sources.append((int(match.group(1)), []))  # the title line is not answer text
        elif sources and line.strip():
            sources[-1][1].append(line.strip())
    return question.strip(), [(number, "\n".join(lines)) for number, lines in sources]


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder

    async def available(self) -> bool:
        return True

    async def stream(self, messages: list[ChatMessage], *, max_tokens: int = 256,
                     temperature: float = 0.0) -> AsyncIterator[str]:
        question, sources = parse_prompt(messages)
        for number, sentence in extract_answer(question, sources, embedder=self.embedder):
            yield f"{sentence} [{number}] "
