"""Reciprocal rank fusion (Cormack et al. 2009): rankings merged by rank, not by raw score."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60
"""A hit ranked r-th (from 1) in one ranking adds 1 / (RRF_K + r) to its fused score."""


def fuse(rankings: Sequence[Sequence[K]], k: int) -> list[tuple[K, float]]:
    """The ``k`` best ``(id, fused score)`` pairs, best first.

    Ties are broken by the best rank an id reached, then by the order of ``rankings``.
    """
    scores: dict[K, float] = {}
    best: dict[K, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
            best[item] = min(best.get(item, (rank, which)), (rank, which))
    ordered = sorted(scores, key=lambda item: (-scores[item], best[item]))
    return [(item, scores[item]) for item in ordered[:k]]
