"""Periodic tasks under Celery: every worker runs a timer over ``workers.schedule``'s registry.

No broker is reached here: the Celery app is only built, and the timer's queue is a recorder.
The race between two workers' timers on a real Redis is in
tests/integration/test_celery_schedule.py.
"""

from __future__ import annotations

import threading

import pytest

from core.config import Settings
from workers.celery_app import PeriodicStep, create_app
from workers.context import Payload
from workers.registry import load_tasks
from workers.schedule import CHECK_S, PERIODIC, PeriodicTimer

pytestmark = pytest.mark.unit

# Settings under which every declared periodic task is enabled.
ALL_ON = {"broker_url": "redis://127.0.0.1:1/0", "retention_days": 30,
          "kafka_bootstrap": "kafka:9092"}


class Recorder:
    """An ``Enqueuer`` that keeps what it was given; the same id for the same key."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Payload, str | None]] = []
        self.closed = False
        self.checked = threading.Event()

    def enqueue(self, task: str, payload: Payload, *, key: str | None = None) -> str:
        self.calls.append((task, payload, key))
        self.checked.set()
        return f"id-{key}"

    def close(self) -> None:
        self.closed = True


def periodic_step(settings: Settings) -> type[PeriodicStep]:
    steps = [s for s in create_app(settings).steps["worker"] if issubclass(s, PeriodicStep)]
    assert len(steps) == 1, "the Celery app must carry exactly one periodic timer"
    return steps[0]


def test_the_celery_worker_timer_enqueues_every_declared_periodic_task_with_its_period(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(**ALL_ON)  # type: ignore[arg-type]
    load_tasks(settings)
    assert {"conversations.retention": 24 * 3600.0, "analytics.rasa_events": 60.0}.items() \
        <= {name: p.every_s for name, p in PERIODIC.items()}.items()
    assert all(p.when(settings) for p in PERIODIC.values()), "ALL_ON must enable every task"

    recorder = Recorder()
    monkeypatch.setattr("workers.celery_app.CeleryQueue", lambda settings: recorder)
    step = periodic_step(settings)
    timer = step(None).create(None)  # what the worker's blueprint does
    assert isinstance(timer, PeriodicTimer) and timer.settings is settings
    # Checked at least once per period of the most frequent task, so none is skipped.
    assert timer.check_s == CHECK_S <= min(p.every_s for p in PERIODIC.values())

    now = 1_800_000_000.0
    timer.check(now=now)
    assert sorted(recorder.calls) == sorted(
        (name, {}, f"periodic:{name}:{int(now // p.every_s)}") for name, p in PERIODIC.items())

    # Within the same period the keys are the same: the queue (Redis) runs each once.
    recorder.calls.clear()
    timer.check(now=now + 1)
    assert {key for _, _, key in recorder.calls} == {
        f"periodic:{name}:{int((now + 1) // p.every_s)}" for name, p in PERIODIC.items()}


def test_disabled_periodic_tasks_are_not_enqueued(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", retention_days=0)
    recorder = Recorder()
    monkeypatch.setattr("workers.celery_app.CeleryQueue", lambda settings: recorder)
    periodic_step(settings)(None).create(None).check(now=1_800_000_000.0)
    assert "conversations.retention" not in {task for task, _, _ in recorder.calls}


def test_the_timer_checks_at_start_and_closes_its_queue_at_stop() -> None:
    recorder = Recorder()
    timer = PeriodicTimer(lambda: recorder, Settings(**ALL_ON),  # type: ignore[arg-type]
                          check_s=3600)
    timer.start()
    try:
        assert recorder.checked.wait(10), "no check at start"
    finally:
        timer.stop()
    assert recorder.closed
    assert {task for task, _, _ in recorder.calls} == set(PERIODIC)


def test_a_failing_check_is_logged_and_the_timer_goes_on(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    def unreachable() -> Recorder:
        raise ConnectionError("broker down")

    timer = PeriodicTimer(unreachable, Settings(**ALL_ON))  # type: ignore[arg-type]
    assert timer.check() == []
    assert "could not enqueue the periodic tasks" in caplog.text
