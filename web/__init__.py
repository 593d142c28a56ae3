"""Parley's shell: the FastAPI app that mounts every domain's routers, health and metrics, the
pages with their scripts (chat widget, agent console, knowledge editor), the ``parley`` CLI and
the process runner. Business logic and the conversation API live in the domain packages."""
