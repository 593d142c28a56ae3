"""The NLU's background task; the workers load this module by name (``Settings.task_modules``).

    retrain_nlu      {}   train the NLU for the configured data and preset, or reuse the
                          version trained on the same (``nlu.train.train_for_settings``)
"""

from __future__ import annotations

import asyncio

from nlu.errors import TrainingDataError
from nlu.train import train_for_settings
from workers.context import Payload, TaskContext
from workers.registry import task


@task("retrain_nlu", timeout_s=3600, permanent=(TrainingDataError,))
async def retrain_nlu(payload: Payload, ctx: TaskContext) -> str:
    return await asyncio.to_thread(train_for_settings, ctx.settings)
