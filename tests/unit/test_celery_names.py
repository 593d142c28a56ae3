"""Every registered task, dotted names included, becomes a Celery task a worker can load."""

from __future__ import annotations

import pytest
from celery import Celery

from core.config import Settings
from workers.base import RetryPolicy
from workers.celery_app import _register
from workers.registry import load_tasks, task_names

pytestmark = pytest.mark.unit


def test_every_task_name_registers_with_celery() -> None:
    settings = Settings()
    load_tasks(settings)
    app = Celery("parley-test", broker="memory://", backend="cache+memory://")
    for name in task_names(settings):
        _register(app, name, RetryPolicy.from_settings(settings), lambda: None)  # type: ignore[arg-type,return-value]
        task = app.tasks[f"parley.{name}"]
        assert task.s({"x": 1}).args == ({"x": 1},)  # builds Celery's signature wrapper
    assert any("." in name for name in task_names(settings))
