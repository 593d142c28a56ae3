"""Knowledge exceptions.

    KnowledgeError
    └── KnowledgeUnavailable   the store cannot be reached
"""

from __future__ import annotations

from core.errors import DependencyUnavailable, ParleyError


class KnowledgeError(ParleyError):
    code = "knowledge_error"


class KnowledgeUnavailable(KnowledgeError, DependencyUnavailable):
    code = "knowledge_unavailable"
