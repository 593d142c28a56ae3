"""Prometheus metrics shared by the API's modules."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("parley_http_requests_total", "HTTP requests", ["method", "route", "status"])
MESSAGES = Counter("parley_messages_total", "Messages stored", ["role"])
TURN_LATENCY = Histogram("parley_turn_seconds", "Time Rasa took to answer one customer turn",
                         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
HANDOFFS = Counter("parley_handoffs_total", "Conversations handed to people", ["reason"])
