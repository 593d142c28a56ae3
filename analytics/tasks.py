"""Analytics task bodies: fold the outbox into facts and rollups.

The API folds every two seconds in process (``web/app.py``); a worker or a scheduler can
submit ``analytics.fold`` as well. Folders never run at once (``analytics.fold``).
"""

from __future__ import annotations

from analytics.fold import fold_all
from core import db
from workers.context import Payload, TaskContext
from workers.registry import task


@task("analytics.fold", timeout_s=300)
async def fold(payload: Payload, ctx: TaskContext) -> dict[str, int]:
    engine = db.create_engine(ctx.settings.database_url)
    try:
        folded = await fold_all(db.sessionmaker(engine),
                                reopen_days=ctx.settings.analytics_reopen_days)
    finally:
        await engine.dispose()
    return {"folded": folded}
