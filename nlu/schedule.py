"""How long fine-tuning runs, chosen by the size of the data.

Training time goes with the example passes (examples times epochs), so a fixed number of epochs
is wrong at both ends: a few hundred examples need many epochs to take enough optimizer steps,
and ten thousand examples at the same epochs take most of an hour on two CPU cores. The rule:

    epochs = the most whole epochs within ``example_budget`` passes,
             never fewer than ``min_epochs`` and never more than ``epochs``,
             then raised until the run takes ``min_steps`` optimizer steps (small data)

So the example passes stay within the budget unless ``min_epochs`` (large data) or
``min_steps`` (tiny data) ask for more. An ``example_budget`` of 0 trains ``epochs`` epochs
whatever the size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULE_RULE = 1  # part of every training key: raise it when ``plan`` changes its answers


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    epochs: int

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def plan(n_examples: int, *, batch_size: int, epochs: int, min_epochs: int = 1,
         min_steps: int = 0, example_budget: int = 0) -> Schedule:
    """The schedule for ``n_examples`` training examples (see the module's rule)."""
    steps_per_epoch = max(1, math.ceil(n_examples / batch_size))
    chosen = epochs
    if example_budget > 0:
        chosen = min(epochs, max(min_epochs, example_budget // max(1, n_examples)))
    chosen = max(chosen, math.ceil(min_steps / steps_per_epoch))
    return Schedule(steps_per_epoch, max(1, chosen))
