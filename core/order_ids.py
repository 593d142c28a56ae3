"""The shape of a company's order ids, from its project (``orders:`` in parley.yml).

An id is ``<prefix>-<digits>`` (``PL-204817``: prefix ``PL``, 6 digits) or, with no prefix,
the digits alone. Customers write it loosely (``pl 204817``, ``PL204817``, ``#PL-204817``);
``normalise`` gives the canonical form, ``valid`` says whether a value is one, and ``find``
locates the prefixed ones in free text (a bare run of digits is only a candidate, which the
order form checks: ``nlu.patterns``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class OrderIds:
    prefix: str = ""
    digits: int = 6

    @cached_property
    def _loose(self) -> re.Pattern[str]:
        # ASCII look-arounds: Chinese text puts digits right after what ``\b`` counts as word.
        return re.compile(rf"(?<![A-Za-z0-9]){re.escape(self.prefix)}[\s-]?(\d{{{self.digits}}})"
                          r"(?!\d)", re.IGNORECASE)

    @cached_property
    def _exact(self) -> re.Pattern[str]:
        prefix = f"{re.escape(self.prefix.upper())}-" if self.prefix else ""
        return re.compile(rf"{prefix}\d{{{self.digits}}}")

    @cached_property
    def _compact(self) -> re.Pattern[str]:
        return re.compile(rf"{re.escape(self.prefix.upper())}-?(\d{{{self.digits}}})")

    @cached_property
    def masking(self) -> re.Pattern[str]:
        """What ``core.redact`` masks as an order id: the prefix and four or more digits
        however written (a mistyped id is still someone's), or with no prefix a run of exactly
        ``digits`` digits."""
        if self.prefix:
            return re.compile(rf"(?<![A-Za-z0-9]){re.escape(self.prefix)}[\s-]?\d{{4,}}(?!\d)",
                              re.IGNORECASE)
        return re.compile(rf"(?<![A-Za-z0-9])\d{{{self.digits}}}(?!\d)")

    def canonical(self, number: str) -> str:
        return f"{self.prefix.upper()}-{number}" if self.prefix else number

    def find(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, canonical id) of each prefixed id in ``text`` (none without a prefix:
        a bare number is not known to be an order id)."""
        if not self.prefix:
            return
        for match in self._loose.finditer(text):
            yield match.start(), match.end(), self.canonical(match.group(1))

    def normalise(self, value: str) -> str:
        compact = re.sub(r"[\s#]", "", value).upper()
        match = self._compact.fullmatch(compact)
        return self.canonical(match.group(1)) if match else compact

    def valid(self, value: str) -> bool:
        return bool(self._exact.fullmatch(value))
