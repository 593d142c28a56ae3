"""The company's knowledge: orders, products, customers and policies (later: graph and documents)."""
