"""Conversation task bodies: retention. The workers load this module by name
(``Settings.task_modules``); with ``PARLEY_RETENTION_DAYS`` set, retention runs once a day."""

from __future__ import annotations

from conversations.retention import apply_retention
from core import db
from workers.context import Payload, TaskContext
from workers.errors import InvalidPayload
from workers.registry import task
from workers.schedule import every

DAY_S = 24 * 3600


@task("conversations.retention", timeout_s=3600)
async def retention(payload: Payload, ctx: TaskContext) -> dict[str, object]:
    """``{"days"?: N}``; default ``PARLEY_RETENTION_DAYS`` (nothing to do when that is 0)."""
    days = payload.get("days", ctx.settings.retention_days)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise InvalidPayload("'days' must be a non-negative integer")
    if not days:
        return {"conversations": 0}
    engine = db.create_engine(ctx.settings.database_url)
    try:
        report = await apply_retention(db.sessionmaker(engine), ctx.settings, days=days)
    finally:
        await engine.dispose()
    return report.as_dict()


every("conversations.retention", DAY_S, when=lambda settings: settings.retention_days > 0)
