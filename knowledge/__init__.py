"""The company's knowledge: documents, the graph, embeddings, generators and the answer
gate."""
