"""Markdown to safe HTML for the editor's preview.

Everything is escaped first; the renderer then adds only the tags it writes itself:
headings, paragraphs, lists, bold, italic, inline code and links whose URL is http(s).
No HTML in the source survives as markup, so the preview cannot carry a script.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,9}[.)]\s+(.*)$")
_LINK = re.compile(r"\[([^\[\]\n]+)\]\(([^()\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_EM = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*|(?<![A-Za-z0-9])_(?=\S)(.+?)(?<=\S)_(?![A-Za-z0-9])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SLOT = re.compile(r"\x00(\d+)\x00")


def safe_url(url: str) -> str | None:
    """The URL if it is an absolute http(s) URL, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _emphasis(text: str) -> str:
    text = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", text)
    return _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)


def inline(raw: str) -> str:
    """One line of Markdown as escaped HTML with emphasis, code and http(s) links."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return f"\x00{len(slots) - 1}\x00"

    def code(match: re.Match[str]) -> str:
        return keep(f"<code>{html.escape(match.group(1))}</code>")

    def link(match: re.Match[str]) -> str:
        label = _emphasis(html.escape(match.group(1)))
        url = safe_url(match.group(2))
        if url is None:
            return keep(label)  # the text stays, the unsafe target goes
        return keep(f'<a href="{html.escape(url, quote=True)}" rel="nofollow noopener '
                    f'noreferrer">{label}</a>')

    text = _CODE.sub(code, _CONTROL.sub("", raw))
    text = _LINK.sub(link, text)
    # Whatever is left is plain text: escaped, then the emphasis markers become tags.
    text = _emphasis(html.escape(text))
    return _SLOT.sub(lambda m: slots[int(m.group(1))], text)


def render_markdown(source: str) -> str:
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            out.append("<p>" + " ".join(inline(line) for line in paragraph) + "</p>")
            paragraph.clear()
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{inline(i)}</li>" for i in items)
                       + f"</{list_tag}>")
            items.clear()
            list_tag = ""

    for line in source.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            flush()
        elif heading := _HEADING.match(line):
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif (bullet := _BULLET.match(line)) or (numbered := _NUMBERED.match(line)):
            tag = "ul" if bullet else "ol"
            if paragraph or (list_tag and list_tag != tag):
                flush()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()  # a wrapped list item continues
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    flush()
    return "\n".join(out)
