"""Mask personal data in customer text: in exports, in analytics (answer facts keep the
question redacted; the audit shows agents' replies redacted) and, where configured, in the
question a generator is sent.

``redact`` replaces e-mail addresses, order-id-like codes (letters then four or more digits,
whatever the company's format: ``PL-123456``, ``ORD2024001``), card numbers (13–19 digits,
spaces or dashes allowed between them) and phone numbers (7 or more digits, with ``+``,
spaces, dots, dashes or brackets) by a tag such as ``[email]``. It errs towards masking: any
long run of digits is hidden, whether or not it is a valid card or phone number.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# ASCII look-arounds: Chinese text puts digits right after letters that ``\b`` counts as word.
ORDER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,8}-?\d{4,}(?!\d)")
CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")
PHONE = re.compile(r"(?<![A-Za-z0-9+])\+?\(?\d[\d ().-]{5,}\d(?!\d)")
DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def _phone(match: re.Match[str]) -> str:
    found = match[0]
    if DATE.fullmatch(found.strip()) or sum(c.isdigit() for c in found) < 7:
        return found
    return "[phone]"


def redact(text: str) -> str:
    text = EMAIL.sub("[email]", text)
    text = ORDER.sub("[order]", text)
    text = CARD.sub("[card]", text)
    return PHONE.sub(_phone, text)
