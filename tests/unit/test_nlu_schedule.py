"""How many epochs training takes, by the size of the data (nlu.schedule): what a user relies
on, not how long it takes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from nlu.finetune import PRESETS, training_schedule
from nlu.schedule import plan

pytestmark = pytest.mark.unit

DEMO = PRESETS["demo"]
SIZES = [20, 100, 700, 2_000, 5_000, 9_000, 10_000, 14_000, 20_000, 50_000]


def test_bigger_data_never_trains_more_epochs() -> None:
    epochs = [training_schedule(DEMO, n).epochs for n in SIZES]
    assert epochs == sorted(epochs, reverse=True)
    assert epochs[0] > epochs[-1]


def test_never_fewer_than_the_minimum_nor_more_than_asked() -> None:
    for n in SIZES:
        schedule = training_schedule(DEMO, n)
        assert schedule.epochs >= DEMO.min_epochs
        if schedule.steps_per_epoch * DEMO.epochs >= DEMO.min_steps:
            assert schedule.epochs <= DEMO.epochs


def test_example_passes_stay_within_the_budget() -> None:
    """Unless the minimum epochs ask for more: then exactly the minimum."""
    for n in SIZES:
        schedule = training_schedule(DEMO, n)
        passes = schedule.epochs * n
        assert passes <= max(DEMO.example_budget, DEMO.min_epochs * n)
        assert schedule.steps == schedule.steps_per_epoch * schedule.epochs
        assert schedule.steps_per_epoch == math.ceil(n / DEMO.batch_size)


def test_ten_thousand_examples_train_a_few_epochs() -> None:
    """The size that took 48 minutes at 8 epochs (2 cores) trains 3 epochs."""
    assert training_schedule(DEMO, 9_000).epochs == 3  # 10,000 less the validation tenth
    assert training_schedule(DEMO, 10_000).epochs == 3


@pytest.mark.parametrize("preset", ["demo", "fast"])
def test_small_data_still_gets_min_steps(preset: str) -> None:
    config = PRESETS[preset]
    for n in (5, 20, 60, 200, 700):
        schedule = training_schedule(config, n)
        assert schedule.steps >= config.min_steps
        assert schedule.epochs >= config.epochs  # the budget never shortens small data


def test_the_demo_bot_keeps_its_schedule() -> None:
    """711 examples, 640 after the validation tenth: all 8 epochs, as before the budget."""
    assert training_schedule(DEMO, 640).epochs == DEMO.epochs


def test_no_budget_trains_every_epoch() -> None:
    for n in SIZES:
        assert plan(n, batch_size=32, epochs=10, example_budget=0).epochs == 10
    assert training_schedule(PRESETS["full"], 50_000).epochs == PRESETS["full"].epochs


def test_a_changed_schedule_changes_the_training_key() -> None:
    digest = "d" * 16
    keys = {DEMO.key(digest), replace(DEMO, example_budget=20_000).key(digest),
            replace(DEMO, min_epochs=1).key(digest), replace(DEMO, epochs=6).key(digest)}
    assert len(keys) == 4
