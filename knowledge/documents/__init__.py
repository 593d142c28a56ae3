"""The document index: chunks of FAQs, policies and manuals, searched lexically and by vector.

``protocol.py`` says what the rest of Parley may ask of an index; ``embedded.py`` is the
default (SQLite FTS5 + the in-memory vector matrix of ``vectors.py``, no server);
``elasticsearch.py`` is the production implementation. Both pass
``tests/contract/document_index.py``.
"""
