"""Start the real Parley stack (NLU service, action server, Rasa, API) for tests.

Everything lives in a temporary folder: its own database, tracker store, logs and models
trained from a project's data (the demo by default), on free ports, so tests never touch a
developer's ``.parley/``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.config import DEMO_PROJECT, Settings
from knowledge.sync import sync_all
from nlu.train import train_for_settings
from web import runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    settings: Settings
    supervisor: runner.Supervisor
    env: dict[str, str]

    @property
    def api_url(self) -> str:
        return self.settings.public_url

    def service(self, name: str) -> runner.Service:
        return next(s for s in self.supervisor.services if s.name == name)


def stack_env(root: Path, *, project: Path | None = None,
              models: Path | None = None) -> dict[str, str]:
    return {
        "PARLEY_ENVIRONMENT": "test",
        "PARLEY_PROJECT": str(project or DEMO_PROJECT),
        "PARLEY_VAR_DIR": str(root / "var"),
        "PARLEY_MODELS_DIR": str(models or root / "models"),
        "PARLEY_API_PORT": str(free_port()),
        "PARLEY_NLU_PORT": str(free_port()),
        "PARLEY_ACTION_PORT": str(free_port()),
        "PARLEY_RASA_URL": f"http://127.0.0.1:{free_port()}",
        "PARLEY_SECRET_KEY": secrets.token_urlsafe(32),
        "PARLEY_RASA_TOKEN": secrets.token_urlsafe(32),
        "PARLEY_CUSTOMER_SIGNING_KEY": secrets.token_urlsafe(32),
        # Deterministic answers in tests: the extractive generator, no CPU language model.
        "PARLEY_CPU_LLM": "never",
        # The NLU model: the same training code with the small, fast configuration.
        "PARLEY_NLU_PRESET": "fast",
        # Every test and benchmark client is 127.0.0.1: no abuse limit on conversations.
        "PARLEY_RATE_CONVERSATIONS_PER_MINUTE": "1000000",
        "PARLEY_RATE_CONVERSATIONS_BURST": "1000000",
    }


@contextmanager
def running_stack(root: Path, extra_env: dict[str, str] | None = None, *,
                  project: Path | None = None, models: Path | None = None,
                  workers: int = 1) -> Iterator[Stack]:
    """The four processes for ``project`` (default: the demo), with their state under ``root``
    and Parley's model cache in ``models`` (default: its own, under ``root``); ``workers`` API
    and NLU processes (``parley run --workers``: more than one needs ``PARLEY_STREAM_URL``)."""
    env = {**stack_env(root, project=project, models=models), **(extra_env or {})}
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings()
        train_for_settings(settings)
        asyncio.run(sync_all(settings))
        model = runner.train_rasa(settings)
        supervisor = runner.Supervisor(runner.services(settings, model, workers=workers))
        try:
            supervisor.start_all(timeout_s=240)
            yield Stack(settings, supervisor, env)
        finally:
            supervisor.stop_all()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
