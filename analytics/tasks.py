"""Analytics task bodies: fold the outbox into facts and rollups, and Rasa's events.

The API folds every two seconds in process (``web/app.py``); a worker or a scheduler can
submit ``analytics.fold`` as well. Folders never run at once (``analytics.fold``).
``analytics.rasa_events`` reads Rasa's event broker (``analytics.rasa_events``); whatever works
the queue runs it every ``RASA_EVENTS_EVERY_S`` (``workers.schedule``) once Rasa's broker
exists.
"""

from __future__ import annotations

from analytics.fold import fold_all
from analytics.rasa_events import broker_in_use, fold_rasa_events
from core import db
from workers.context import Payload, TaskContext
from workers.registry import task
from workers.schedule import every

RASA_EVENTS_EVERY_S = 60.0


@task("analytics.fold", timeout_s=300)
async def fold(payload: Payload, ctx: TaskContext) -> dict[str, int]:
    engine = db.create_engine(ctx.settings.database_url)
    try:
        folded = await fold_all(db.sessionmaker(engine),
                                reopen_days=ctx.settings.analytics_reopen_days)
    finally:
        await engine.dispose()
    return {"folded": folded}


@task("analytics.rasa_events", timeout_s=300)
async def rasa_events(payload: Payload, ctx: TaskContext) -> dict[str, int]:
    engine = db.create_engine(ctx.settings.database_url)
    try:
        stored = await fold_rasa_events(ctx.settings, db.sessionmaker(engine))
    finally:
        await engine.dispose()
    return {"stored": stored}


every("analytics.rasa_events", RASA_EVENTS_EVERY_S, when=broker_in_use)
