"""Graph store exceptions.

    KnowledgeError
    └── GraphError
        ├── GraphUnavailable     the graph server cannot be reached (also a KnowledgeUnavailable)
        ├── InvalidGraphName     a label, relationship type or property name is not allowed
        ├── InvalidGraphValue    a property value is not JSON-safe or not storable
        └── MissingEndpoint      an edge names a node that does not exist
"""

from __future__ import annotations

from knowledge.errors import KnowledgeError, KnowledgeUnavailable


class GraphError(KnowledgeError):
    code = "graph_error"


class GraphUnavailable(GraphError, KnowledgeUnavailable):
    code = "graph_unavailable"


class InvalidGraphName(GraphError):
    status_code = 422
    code = "invalid_graph_name"


class InvalidGraphValue(GraphError):
    status_code = 422
    code = "invalid_graph_value"


class MissingEndpoint(GraphError):
    status_code = 409
    code = "missing_endpoint"
