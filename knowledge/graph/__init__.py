"""The company's knowledge as a graph: products, orders, customers, policies and their links.

``protocol.GraphStore`` is the capability the rest of Parley asks for. Two implementations
pass the same contract tests (tests/contract/graph_store.py):

- ``embedded.SQLiteGraphStore``: the default, a SQLite file, no server;
- ``neo4j.Neo4jGraphStore``: a Neo4j (or any Bolt/Cypher) server, the only module that
  imports the neo4j driver.

``company.load_company`` fills either from a project's ``company/*.yml``; ``GraphStore.facts``
turns a node and its links into statements an answer may cite.
"""
