"""Import files into the knowledge base: Markdown (front matter: id, title, tags, lang), HTML,
PDF and CSV FAQs (``question,answer``).

Chunks are content-addressed (``<doc id>#<hash of the chunk>``), so re-importing a changed
file embeds and writes only the chunks that changed and deletes the ones that disappeared. A
chunk's ``content_hash`` also names the embedder: vectors of two embedders are not comparable,
so a knowledge base indexed by another one is embedded again on its next import. New chunks
are embedded ``EMBED_GROUP`` at a time across documents and files (the embedder sorts them by
length and batches them). A file that cannot be parsed is reported by name and skipped; the
rest are imported.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from knowledge.compose import prepare_sentences
from knowledge.documents.protocol import Chunk, DocumentIndex
from knowledge.embeddings import Embedder, SentenceVectors
from knowledge.pii import mask_personal_data
from knowledge.safety import (
    HTML_COMMENT,
    clean_text,
    hidden,
    looks_like_instruction,
    strip_hidden_html,
)
from nlu.patterns import detect_language

SUPPORTED = {".md", ".markdown", ".html", ".htm", ".pdf", ".csv"}
MAX_CHARS = {"en": 900, "zh": 350}
EMBED_GROUP = 256  # new chunks embedded in one call
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
# A Chinese full stop ends a sentence at once, a Latin one only before a space ("1.7万").
_SENTENCE_END = re.compile(r"(?<=[。！？])\s*|(?<=[.!?])\s+")


class ParseError(ValueError):
    """A file that cannot be imported (the message says why)."""


@dataclass
class Document:
    id: str
    title: str
    lang: str
    source: str
    tags: tuple[str, ...] = ()
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, text)


@dataclass
class ImportReport:
    files: int = 0
    documents: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "doc"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_row(header: list[str], cells: list[str]) -> str:
    """A table row as a self-contained sentence: "Warranty: 3 years; Products: blender."."""
    chinese = any("\u3400" <= ch <= "\u9fff" for ch in "".join(cells))
    sep, pair, end = ("；", "：", "。") if chinese else ("; ", ": ", ".")
    parts = [f"{h}{pair}{c}" if h else c for h, c in zip(header, cells, strict=False) if c]
    return sep.join(parts) + end


def _markdown_text(line: str) -> str:
    line = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", line)  # images
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)  # links keep their text
    line = re.sub(r"[*_`]{1,3}", "", line)
    return re.sub(r"^\s*(?:[-*+]|\d+\.)\s+", "", line).strip()


def parse_markdown(path: Path) -> list[Document]:
    return [parse_markdown_text(path.read_text(encoding="utf-8"), source=str(path),
                                default_id=_slug(path.stem),
                                default_title=path.stem.replace("-", " "))]


def parse_markdown_text(raw: str, *, source: str, default_id: str = "doc",
                        default_title: str = "") -> Document:
    """Markdown (optionally with front matter: id, title, tags, lang) as a Document."""
    meta: dict = {}
    if match := _FRONT_MATTER.match(raw):
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise ParseError(f"invalid front matter: {exc}") from exc
        if not isinstance(meta, dict):
            raise ParseError("front matter must be a mapping")
        raw = raw[match.end():]
    raw = strip_hidden_html(raw)  # comments and hidden elements: never indexed, never cited
    sections: list[tuple[str, str]] = []
    lines: list[str] = []
    heading, title = "", str(meta.get("title") or "")
    paragraph_open = False
    header: list[str] | None = None
    for line in raw.splitlines():
        if line.strip().startswith("|"):
            cells = _cells(line)
            if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                if lines and header is None and lines[-1].startswith("\x00"):
                    header = lines.pop()[1:].split("\x00")  # the row above is the header
                continue
            if header is None:
                lines.append("\x00" + "\x00".join(cells))  # maybe a header: decided next line
            else:
                lines.append(_table_row(header, cells))
            paragraph_open = False
            continue
        if header is not None or (lines and lines[-1].startswith("\x00")):
            if lines and lines[-1].startswith("\x00"):  # a table without a header row
                lines[-1] = _table_row([], lines[-1][1:].split("\x00"))
            header = None
        if m := _HEADING.match(line):
            if lines:
                sections.append((heading, "\n".join(lines)))
            lines, paragraph_open = [], False
            heading = m.group(2).strip()
            if not title and len(m.group(1)) == 1:
                title = heading
        elif not line.strip():
            paragraph_open = False
        elif cleaned := _markdown_text(line):
            stripped = line.lstrip()
            starts_block = stripped.startswith(("-", "*", "+", "|")) or stripped[:1].isdigit()
            if paragraph_open and not starts_block:
                lines[-1] = f"{lines[-1]} {cleaned}"  # a soft-wrapped line continues
            else:
                lines.append(cleaned)
            paragraph_open = True
    if lines:
        sections.append((heading, "\n".join(lines)))
    body = " ".join(t for _, t in sections)
    if not body.strip():
        raise ParseError("no text")
    return Document(id=str(meta.get("id") or default_id), title=title or default_title,
                    lang=str(meta.get("lang") or detect_language(body)), source=source,
                    tags=tuple(str(t) for t in meta.get("tags") or ()), sections=sections)


def parse_html(path: Path) -> list[Document]:
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    for node in soup(["script", "style", "noscript", "template", "iframe", "head"]):
        if node.name != "head":
            node.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    # Hidden text is not what readers see, and a classic place to hide instructions.
    for node in soup.find_all(True):
        if not node.decomposed and hidden(node.attrs):
            node.decompose()
    title_tag = soup.find("title")
    title = title_tag.get_text(strip=True) if title_tag else ""
    html_tag = soup.find("html")
    body = soup.body or soup
    sections: list[tuple[str, str]] = []
    lines: list[str] = []
    heading = ""
    for node in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "pre", "blockquote"]):
        text = node.get_text(" ", strip=True)
        if not text:
            continue
        if node.name in {"h1", "h2", "h3", "h4"}:
            if lines:
                sections.append((heading, "\n".join(lines)))
            heading, lines = text, []
            title = title or text
        else:
            lines.append(text)
    if lines:
        sections.append((heading, "\n".join(lines)))
    body_text = " ".join(t for _, t in sections)
    if not body_text.strip():
        raise ParseError("no visible text")
    lang = (html_tag.get("lang") if html_tag else None) or detect_language(body_text)
    return [Document(id=_slug(path.stem), title=title or path.stem, lang=str(lang)[:2],
                     source=str(path), sections=sections)]


def parse_pdf(path: Path) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [(f"page {i + 1}", (page.extract_text() or "").strip())
                 for i, page in enumerate(reader.pages)]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ParseError(f"unreadable PDF ({type(exc).__name__})") from exc
    pages = [(h, t) for h, t in pages if t]
    if not pages:
        raise ParseError("no extractable text (scanned PDF?)")
    meta_title = (reader.metadata.title if reader.metadata else None) or path.stem
    body = " ".join(t for _, t in pages)
    return [Document(id=_slug(path.stem), title=str(meta_title), lang=detect_language(body),
                     source=str(path), sections=pages)]


def parse_faq_csv(path: Path) -> list[Document]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "question" not in header or "answer" not in header:
            raise ParseError("a FAQ CSV needs 'question' and 'answer' columns")
        q, a = header.index("question"), header.index("answer")
        documents = []
        for row_number, row in enumerate(reader, 1):
            if len(row) <= max(q, a) or not row[q].strip() or not row[a].strip():
                raise ParseError(f"line {row_number + 1}: empty question or answer")
            question, answer = row[q].strip(), row[a].strip()
            documents.append(Document(id=f"faq:{row_number}", title=question,
                                      lang=detect_language(question + answer), source=str(path),
                                      tags=("faq",), sections=[("", answer)]))
    if not documents:
        raise ParseError("no rows")
    return documents


PARSERS: dict[str, Callable[[Path], list[Document]]] = {
    ".md": parse_markdown, ".markdown": parse_markdown, ".html": parse_html,
    ".htm": parse_html, ".pdf": parse_pdf, ".csv": parse_faq_csv,
}


def _pieces(text: str, limit: int) -> list[str]:
    """Split text into pieces under ``limit`` characters at paragraph, then sentence ends."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n"):
        units = [paragraph] if len(paragraph) <= limit else [
            s for s in _SENTENCE_END.split(paragraph) if s]
        for unit in units:
            if current and len(current) + len(unit) + 1 > limit:
                pieces.append(current)
                current = ""
            joiner = " " if len(units) > 1 else "\n"  # keep paragraphs and table rows apart
            current = f"{current}{joiner}{unit}".strip() if current else unit
    if current:
        pieces.append(current)
    return pieces


def _indexable(text: str) -> str:
    """What may be stored: no invisible characters or HTML comments (any format), other
    people's contact details masked (``knowledge.pii``)."""
    text = re.sub(r"[ \t]+$", "", HTML_COMMENT.sub("", clean_text(text)), flags=re.M)
    return mask_personal_data(text.strip())


def chunk_document(document: Document, *, embedder: str = "") -> list[Chunk]:
    """The document's chunks; ``embedder``: the name of the embedder that will embed them,
    part of each ``content_hash`` (ids do not depend on it)."""
    limit = MAX_CHARS.get(document.lang, 900)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    title = _indexable(document.title)  # a title is cited and prompted as it is: no orders
    if looks_like_instruction(title):
        title = document.id
    for heading, text in ((_indexable(h), _indexable(t)) for h, t in document.sections):
        for piece in _pieces(text, limit):
            body = f"{heading}\n{piece}" if heading and heading != title else piece
            digest = hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()[:16]
            seen[digest] = seen.get(digest, 0) + 1
            suffix = f"-{seen[digest]}" if seen[digest] > 1 else ""
            content_hash = (hashlib.sha256(f"{embedder}\n{title}\n{body}".encode())
                            .hexdigest()[:16] if embedder else digest)
            chunks.append(Chunk(id=f"{document.id}#{digest}{suffix}", doc_id=document.id,
                                title=title, text=body, lang=document.lang,
                                source=document.source, tags=document.tags,
                                content_hash=content_hash))
    return chunks


def collect_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(path)
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)


class _Writer:
    """Chunks waiting to be embedded and written, and chunk ids waiting to be deleted (after
    the new chunks are written, so a document never disappears in between)."""

    def __init__(self, index: DocumentIndex, embedder: Embedder, report: ImportReport,
                 sentences: SentenceVectors | None = None) -> None:
        self.index, self.embedder, self.report = index, embedder, report
        self.sentences = sentences
        self.fresh: list[Chunk] = []
        self.stale: list[str] = []
        self.doc_ids: set[str] = set()

    async def add(self, document: Document) -> None:
        if document.id in self.doc_ids:  # its chunks as written so far decide what is stale
            await self.flush()
        chunks = chunk_document(document, embedder=self.embedder.name)
        existing = await self.index.hashes(document.id)
        fresh = [c for c in chunks if existing.get(c.id) != c.content_hash]
        ids = {c.id for c in chunks}
        stale = [cid for cid in existing if cid not in ids]
        self.fresh += fresh
        self.stale += stale
        self.doc_ids.add(document.id)
        self.report.documents += 1
        self.report.added += len(fresh)
        self.report.removed += len(stale)
        self.report.unchanged += len(chunks) - len(fresh)
        if len(self.fresh) >= EMBED_GROUP:
            await self.flush()

    async def flush(self) -> None:
        if self.fresh:
            vectors = self.embedder.embed([f"{c.title}\n{c.text}" for c in self.fresh])
            await self.index.upsert([Chunk(**{**c.__dict__, "vector": tuple(map(float, v))})
                                     for c, v in zip(self.fresh, vectors, strict=True)])
            if self.sentences is not None:  # and their sentences, which answers weigh
                await asyncio.to_thread(prepare_sentences, self.fresh, self.sentences)
        if self.stale:
            await self.index.delete(self.stale)
        self.fresh, self.stale, self.doc_ids = [], [], set()


async def import_documents(documents: Sequence[Document], *, index: DocumentIndex,
                           embedder: Embedder, report: ImportReport,
                           sentences: SentenceVectors | None = None) -> None:
    writer = _Writer(index, embedder, report, sentences)
    for document in documents:
        await writer.add(document)
    await writer.flush()


async def import_path(path: Path, *, index: DocumentIndex, embedder: Embedder,
                      progress: Callable[[Path], None] = lambda _: None,
                      skip_ids: frozenset[str] = frozenset(),
                      sentences: SentenceVectors | None = None) -> ImportReport:
    """Import a file or a folder; never stops at a bad file. Documents whose id is in
    ``skip_ids`` (those the knowledge-base editor now owns) are left as they are.
    ``progress`` is called as each file is read; all is written when this returns.
    ``sentences``: the deployment's sentence vectors, given the new chunks' sentences."""
    report = ImportReport()
    writer = _Writer(index, embedder, report, sentences)
    for file in collect_files(Path(path)):
        report.files += 1
        try:
            documents = PARSERS[file.suffix.lower()](file)
        except (ParseError, UnicodeDecodeError, OSError, csv.Error) as exc:
            report.failed.append((str(file), str(exc) or type(exc).__name__))
            progress(file)
            continue
        for document in documents:
            if document.id not in skip_ids:
                await writer.add(document)
        progress(file)
    await writer.flush()
    return report


POLICY_TOPICS = {"payments": "payment"}  # a policy's topic tag, where it differs from its id


def policy_documents(company_dir: Path) -> list[Document]:
    """The company's policies (``company/policies.yml``) as one document per language."""
    path = company_dir / "policies.yml"
    if not path.is_file():
        return []
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    documents = []
    for policy in doc.get("policies", doc if isinstance(doc, list) else []):
        for lang, text in policy["text"].items():
            suffix = "" if lang == "en" else f"-{lang}"
            documents.append(Document(
                id=f"policy-{policy['id']}{suffix}", title=policy["title"].get(lang, ""),
                lang=lang, source=str(company_dir / "policies.yml"),
                tags=("policy", POLICY_TOPICS.get(policy["id"], policy["id"])),
                sections=[("", text.strip())]))
    return documents
