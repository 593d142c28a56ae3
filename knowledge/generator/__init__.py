"""Answer generators: vLLM over its OpenAI-compatible API, a small CPU model, and an extractive
fallback that needs no model at all."""
