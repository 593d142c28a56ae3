"""Mask other people's contact details in knowledge text: what is indexed, cited or answered.

An article may quote a customer ("Customer: Anna Schmidt, anna.schmidt@gmail.com,
+49 171 2345678"); the assistant must not hand that to the next person who asks. The rule
needs no configuration, so the import and the answer apply the same one:

- **E-mail addresses** are masked (``a***@gmail.com``) unless they are *role mailboxes*: the
  local part's first word (split at ``. - _ +``) names a function, not a person
  (``support@``, ``help@``, ``service-eu@``, ``returns@``, ``info@``, ``sales@`` …, see
  ``ROLE_MAILBOXES``). A role mailbox is how a company asks to be contacted, on any domain;
  a personal address is masked on every domain, the company's own included (a colleague's
  address is personal data too, and an answer never needs it).
- **Phone numbers** (international ``+49 …``, national ``030 …`` with a separator, Chinese
  mobiles ``138 0013 8000``, NANP ``555-123-4567``) keep their last two digits
  (``+** *** *****78``) unless they are business-only numbers (toll-free and shared-cost
  ranges such as 0800, 1-800, the Chinese 400/800) or the sentence offers them as the
  company's own line ("call us", "our hotline", "客服热线", "联系我们"). IBANs, long digit
  runs (tracking numbers) and ids glued to letters (``PL-123456``) are never read as phones.
- **Names** only where the text labels them: "Customer: Anna Schmidt", "客户：张伟"
  (``Customer: A*** S***``, ``客户：张*``). Free-text names are not detected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ROLE_MAILBOXES = frozenset("""support help helpdesk service services customerservice
customercare customer care info information contact contacts contactus hello hallo hi kontakt
kundenservice sales billing accounts accounting invoice invoices orders order returns return
refunds shipping delivery warranty repairs repair servicedesk team office admin webmaster
postmaster hostmaster abuse security privacy dpo gdpr legal press media pr marketing partners
partner business wholesale b2b careers jobs hr recruiting feedback complaints noreply no-reply
donotreply do-not-reply newsletter news enquiries inquiries bookings booking shop store
reception""".split())
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"(?![A-Za-z0-9-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(r"""
    (?<![\w+/.,-])
    (?:
        \+\d{1,3}[ .-]?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{2,5}){1,4}
      | \(0?\d{2,5}\)[ .-]?\d{3,4}(?:[ .-]?\d{2,5}){1,2}
      | 0\d{2,4}[ /.-]\d{3,4}(?:[ .-]?\d{2,5}){0,2}
      | 1[3-9]\d[ -]?\d{4}[ -]?\d{4}
      | (?:1[ .-])?\d{3}[ .-]\d{3}[ .-]\d{4}
    )
    (?![\w-]|[.,]\d)
""", re.X)
# Toll-free and shared-cost ranges: only businesses have them.
_BUSINESS_NUMBER = re.compile(
    r"^\+?(?:00)?(?:1|44|49|86|33|34|39|41|43|31|32|45|46|47|48)?[ .-]?\(?0?"
    r"(?:800|801|808|180\d|300|33\d|34[3-5]|37\d|84[345]|87[01]|888|877|866|855|844|833|400)"
    r"(?!\d)")
_COMPANY_LINE = re.compile(
    r"(?:call|phone|ring|reach|contact|text)\s+us|\bour\b(?:\s+\w+){0,2}\s+(?:number|hotline|"
    r"helpline|line|phone|telephone)|hotline|helpline|service line|客服(?:电话|热线)|服务热线|热线|"
    r"联系我们|致电我们|拨打我们|拨打客服", re.I)
_ID_CONTEXT = re.compile(r"(?:order|tracking|invoice|iban|account|no\.|#|订单|运单|单号|账号)"
                         r"\W{0,3}[\w-]{0,3}\W{0,3}$", re.I)
_NAME_EN = re.compile(
    r"\b((?:Customer|Client|Buyer|Recipient|Sender|Account holder|Card ?holder|Contact person|"
    r"Reported by|Submitted by)(?: name)?\s*[:：]\s*)([A-Z][a-z]+(?:[ '-][A-Z][a-z]+){1,2})\b")
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"
             "袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟"
             "熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_NAME_ZH = re.compile(rf"((?:客户|顾客|买家|收件人|寄件人|联系人|客户姓名|姓名|持卡人)\s*[:：]\s*)"
                      rf"([{_SURNAMES}][\u4e00-\u9fff]{{1,2}}?)(?=先生|女士|小姐|[，,。；;（(\s]|$)")


def _role_mailbox(local: str) -> bool:
    local = local.lower()
    return re.split(r"[._+-]", local, maxsplit=1)[0] in ROLE_MAILBOXES or local in ROLE_MAILBOXES


def _mask_email(match: re.Match[str]) -> str:
    local, domain = match.group(1), match.group(2)
    if _role_mailbox(local):
        return match.group()
    return f"{local[0]}***@{domain}"


def _mask_digits(number: str) -> str:
    total = sum(c.isdigit() for c in number)
    seen = 0
    out = []
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen > total - 2 else "*")
        else:
            out.append(c)
    return "".join(out)


def _personal_phones(text: str) -> Iterator[re.Match[str]]:
    """Phone numbers in ``text`` that are someone's own (not the company's line)."""
    protected = [m.span() for m in _IBAN.finditer(text)]
    for match in _PHONE.finditer(text):
        start, end = match.span()
        number = match.group()
        digits = sum(c.isdigit() for c in number)
        if not 8 <= digits <= 15 or any(s < end and start < e for s, e in protected):
            continue
        before = text[max(0, start - 60):start]
        sentence = re.split(r"[.!?。！？\n]\s*", before)[-1]
        if (_BUSINESS_NUMBER.match(number) or _COMPANY_LINE.search(sentence)
                or _ID_CONTEXT.search(before)):
            continue
        yield match


def _mask_phones(text: str) -> str:
    out, last = [], 0
    for match in _personal_phones(text):
        start, end = match.span()
        out.append(text[last:start])
        out.append(_mask_digits(match.group()))
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_personal_data(text: str) -> str:
    """``text`` with other people's e-mail addresses, phone numbers and labelled names
    masked (the rule is in the module's docstring). Masking masked text changes nothing."""
    text = _EMAIL.sub(_mask_email, text)
    text = _mask_phones(text)
    text = _NAME_EN.sub(lambda m: m.group(1) + " ".join(f"{w[0]}***" for w in
                                                         re.split(r"[ '-]", m.group(2))), text)
    return _NAME_ZH.sub(lambda m: m.group(1) + m.group(2)[0] + "*" * (len(m.group(2)) - 1), text)


def find_personal_data(text: str) -> list[tuple[str, int, int]]:
    """What ``mask_personal_data`` would mask, as ``(what, start, end)`` in text order:
    ``what`` is ``"email"``, ``"phone"`` or ``"name"``. Role mailboxes and company lines are
    not reported, as they are not masked."""
    found = [("email", *m.span()) for m in _EMAIL.finditer(text) if not _role_mailbox(m.group(1))]
    found += [("phone", *m.span()) for m in _personal_phones(text)]
    found += [("name", *m.span(2)) for pattern in (_NAME_EN, _NAME_ZH)
              for m in pattern.finditer(text)]
    return sorted(found, key=lambda f: (f[1], f[2]))
