"""HTTP layer of analytics: summary, time series and CSV export (admin or analyst).

Periods: ``from`` and ``to`` are ISO dates or date-times; without an offset they are read in
``tz`` (an IANA zone, default UTC). Bad input answers 422 with a stable code, never 500:
``invalid_date``, ``unknown_timezone``, ``invalid_range`` (from ≥ to), ``range_too_long``
(over ``MAX_DAYS``), ``unknown_metric``, ``unknown_interval``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from analytics import export, metrics
from analytics.deps import AnalyticsReader
from core.deps import SessionDep
from core.errors import Unprocessable

router = APIRouter(prefix="/api/v1/admin/analytics", tags=["analytics"])
MAX_DAYS = 400
DEFAULT_DAYS = 7
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin or analyst (`analytics_only`)"},
    422: {"description": "`invalid_date`, `unknown_timezone`, `invalid_range`, "
                         "`range_too_long`, `unknown_metric`, `unknown_interval`"},
}


def zone_of(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Unprocessable(f"Unknown time zone {name!r} (use an IANA name such as "
                            "Europe/Berlin).", code="unknown_timezone") from exc


def _moment(value: str, zone: tzinfo, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError as exc:
        raise Unprocessable(f"'{name}' is not an ISO date or date-time.",
                            code="invalid_date", details={"param": name}) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def period(start: str | None, end: str | None, tz: str) -> tuple[datetime, datetime, tzinfo]:
    """[start, end) as aware datetimes; by default the last seven local days, today included."""
    zone = zone_of(tz)
    if end:
        until = _moment(end, zone, "to")
    else:
        today = datetime.now(UTC).astimezone(zone).date()
        until = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)
    since = _moment(start, zone, "from") if start else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise Unprocessable("'from' must be before 'to'.", code="invalid_range")
    if until - since > timedelta(days=MAX_DAYS):
        raise Unprocessable(f"The period is longer than {MAX_DAYS} days.",
                            code="range_too_long", details={"max_days": MAX_DAYS})
    return since, until, zone


FromQuery = Query(default=None, alias="from", description="ISO date or date-time")
ToQuery = Query(default=None, alias="to", description="ISO date or date-time (excluded)")


@router.get("/summary", responses=ERRORS)
async def summary(_: AnalyticsReader, session: SessionDep, start: str | None = FromQuery,
                  end: str | None = ToQuery, tz: str = "UTC", lang: str | None = None,
                  intent: str | None = None, agent_id: int | None = None) -> dict[str, Any]:
    """Counts, rates, reasons, CSAT, latencies, intents and NLU versions of the cohort opened
    in the period, by language, with the previous period of equal length and today."""
    since, until, zone = period(start, end, tz)
    return await metrics.summary(session, start=since, end=until, tz=zone, lang=lang or None,
                                 intent=intent or None, agent_id=agent_id)


@router.get("/timeseries", responses=ERRORS)
async def timeseries(_: AnalyticsReader, session: SessionDep, metric: str = "conversations",
                     interval: str = "day", start: str | None = FromQuery,
                     end: str | None = ToQuery, tz: str = "UTC",
                     lang: str | None = None) -> dict[str, Any]:
    if metric not in metrics.METRICS:
        raise Unprocessable(f"Unknown metric {metric!r}.", code="unknown_metric",
                            details={"metrics": list(metrics.METRICS)})
    if interval not in metrics.INTERVALS:
        raise Unprocessable(f"Unknown interval {interval!r}.", code="unknown_interval",
                            details={"intervals": list(metrics.INTERVALS)})
    since, until, zone = period(start, end, tz)
    points = await metrics.timeseries(session, metric=metric, start=since, end=until, tz=zone,
                                      interval=interval, lang=lang or None)
    return {"metric": metric, "interval": interval, "points": points}


@router.get("/export.csv", responses=ERRORS, response_class=StreamingResponse)
async def export_csv(_: AnalyticsReader, session: SessionDep, start: str | None = FromQuery,
                     end: str | None = ToQuery, tz: str = "UTC",
                     lang: str | None = None) -> StreamingResponse:
    """One row per conversation; the first customer message is redacted."""
    since, until, zone = period(start, end, tz)
    table = await export.rows(session, start=since, end=until, zone=zone, lang=lang or None)
    name = f"parley-conversations-{since.date()}-{until.date()}.csv"
    return StreamingResponse(export.to_csv(table), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
