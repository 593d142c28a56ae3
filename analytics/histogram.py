"""Fixed-bucket latency histograms: what the hourly rollups keep of a duration, and the
percentiles read off a merged histogram.

Buckets are logarithmic, ``PER_OCTAVE`` to each doubling: a positive value ``v`` falls in
bucket ``floor(log2(v) * PER_OCTAVE)``, and the bucket stands for its geometric middle, so a
value is known to within ±1.1 % (2^(1/64) − 1) whatever its unit or size, from milliseconds
to weeks. Zero and negative values share one bucket (``ZERO``) that stands for 0. The buckets
never change, so histograms of different hours, languages and periods add up bucket by bucket.

A percentile is the one ``numpy.percentile`` gives by default (linear interpolation between
the closest ranks) over the values replaced by their buckets' middles. The fold
(``analytics.fold``) and a summary computed from the facts bucket with the same function, so
both give the same figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

PER_OCTAVE = 32
ZERO = -1_000_000  # below every real bucket (the smallest double is bucket -34,368)


def number(value: Any) -> float | None:
    """A finite number from a payload value, else None (an odd payload never stops the fold)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bucket(value: Any) -> int | None:
    """The bucket of a duration; None when there is no finite number to count."""
    v = number(value)
    if v is None:
        return None
    if v <= 0:
        return ZERO
    return math.floor(math.log2(v) * PER_OCTAVE)


def middle(index: int) -> float:
    """The value a bucket stands for."""
    return 0.0 if index == ZERO else 2.0 ** ((index + 0.5) / PER_OCTAVE)


def of_values(counted: Iterable[tuple[Any, int]]) -> dict[int, int]:
    """A histogram of ``(value, how many times)`` pairs."""
    out: dict[int, int] = {}
    for value, times in counted:
        index = bucket(value)
        if index is not None and times:
            out[index] = out.get(index, 0) + int(times)
    return out


def percentiles(histogram: Mapping[int, int], qs: tuple[float, ...]) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of a histogram, rounded to 3 decimals; None when empty."""
    cells = sorted((index, n) for index, n in histogram.items() if n > 0)
    total = sum(n for _, n in cells)
    if not total:
        return [None for _ in qs]

    def at(rank: int) -> float:  # the middle of the bucket holding the 0-based rank
        seen = 0
        for index, n in cells:
            seen += n
            if rank < seen:
                return middle(index)
        return middle(cells[-1][0])

    out: list[float | None] = []
    for q in qs:
        f = Fraction(q).limit_denominator(1000)
        low, rest = divmod((total - 1) * f.numerator, f.denominator)
        high = min(low + 1, total - 1)
        out.append(round(at(low) + (at(high) - at(low)) * rest / f.denominator, 3))
    return out
