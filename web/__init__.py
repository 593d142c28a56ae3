"""Parley's web layer: the FastAPI app, the public conversation API, the widget and the CLI."""
