"""Document index exceptions.

    KnowledgeError
    └── DocumentIndexError
        ├── DocumentIndexUnavailable   the index cannot be reached (also a KnowledgeUnavailable)
        └── ChunksNotWritten           an upsert refused chunks (``failed``: id → why); the
                                       embedded index then wrote none, Elasticsearch the rest
"""

from __future__ import annotations

from knowledge.errors import KnowledgeError, KnowledgeUnavailable


class DocumentIndexError(KnowledgeError):
    code = "document_index_error"


class DocumentIndexUnavailable(DocumentIndexError, KnowledgeUnavailable):
    code = "document_index_unavailable"


class ChunksNotWritten(DocumentIndexError):
    status_code = 422
    code = "chunks_not_written"

    def __init__(self, failed: dict[str, str]) -> None:
        shown = ", ".join(sorted(failed)[:10]) + (" …" if len(failed) > 10 else "")
        super().__init__(f"{len(failed)} chunk(s) not written: {shown}", details=failed)
        self.failed = failed
