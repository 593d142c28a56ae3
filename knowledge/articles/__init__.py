"""The knowledge-base editor: articles and FAQ entries with versions, publishing to the
document index, an audit log, and an editor for the company graph's products and policies."""
