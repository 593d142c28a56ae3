"""Metrics over the facts and rollups the fold keeps; never over raw messages.

Attribution (see ``analytics.fold``): the cohort of a period is the conversations opened in
[start, end), and it is the denominator of every rate; hand-off wins over a bot resolution; a
resolution reopened within the window does not count; CSAT is split bot/human. Every figure
can be filtered by language.

Time zones: rollups are per UTC hour, so a viewer's day or hour is a union of whole UTC hours
whenever the zone's offset is a whole number of hours over the period (every zone with DST
included). For zones with a half- or quarter-hour offset (Asia/Kolkata, Asia/Kathmandu) or a
period that does not start and end on whole UTC hours, the series is counted from the facts
instead, bucketing each conversation by its exact opening time; both give the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.fold import contributions
from analytics.models import ConversationFact as F
from analytics.models import HourlyRollup, ParseFact

METRICS = ("conversations", "handed_off", "bot_resolved", "answers", "abstained", "csat")
INTERVALS = ("hour", "day")
COUNTS = ("conversations", "bot_resolved", "handed_off", "answers", "abstained")


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def cohort(start: datetime, end: datetime, *, lang: str | None = None,
           intent: str | None = None, agent_id: int | None = None) -> list[ColumnElement[bool]]:
    """The conversations opened in [start, end), filtered."""
    conditions: list[ColumnElement[bool]] = [F.opened_at >= start, F.opened_at < end]
    if lang:
        conditions.append(F.language == lang)
    if agent_id is not None:
        conditions.append(F.agent_id == agent_id)
    if intent:
        conditions.append(F.conversation_id.in_(
            select(ParseFact.conversation_id).where(ParseFact.intent == intent)))
    return conditions


def _flag(column: Any) -> Any:
    return func.coalesce(func.sum(case((column, 1), else_=0)), 0)


def _count_columns() -> tuple[Any, ...]:
    """The cohort's counts, in ``COUNTS`` order."""
    return (func.count(), _flag(F.bot_resolved), _flag(F.handed_off),
            func.coalesce(func.sum(F.answers), 0), func.coalesce(func.sum(F.abstentions), 0))


async def _cohort_outcomes(session: AsyncSession, where: list[ColumnElement[bool]]) -> tuple[
        dict[str, dict[str, int]], dict[str, int], dict[str, tuple[float, int]]]:
    """One pass over the cohort: counts by language, hand-off reasons, (CSAT sum, n) by who
    was rated."""
    rows = (await session.execute(
        select(F.language, F.handoff_reason, F.csat_by, *_count_columns(), func.sum(F.csat),
               func.count(F.csat))
        .where(*where).group_by(F.language, F.handoff_reason, F.csat_by))).all()
    by_language: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = defaultdict(int)
    csat: dict[str, tuple[float, int]] = {}
    for language, reason, by, n, bot, handed, answers, abstained, rated, raters in rows:
        counts = by_language.setdefault(language, dict.fromkeys(COUNTS, 0))
        for name, value in zip(COUNTS, (n, bot, handed, answers, abstained), strict=True):
            counts[name] += int(value)
        if handed:
            reasons[str(reason or "unknown")] += int(handed)
        if raters:
            total, seen = csat.get(by, (0.0, 0))
            csat[by] = (total + float(rated), seen + int(raters))
    return by_language, reasons, csat


async def percentiles(session: AsyncSession, column: Any, qs: tuple[float, ...], *,
                      where: list[ColumnElement[bool]], join: Any = None) -> list[float | None]:
    """Percentiles of a column's non-null values (linear interpolation between closest ranks,
    numpy's default), computed where the rows are: one sort in the database, and only the (at
    most two) ranks each interpolation needs come back."""
    inner = select(column.label("v"), func.row_number().over(order_by=column).label("rn"),
                   func.count().over().label("n")).where(*where, column.is_not(None))
    ranked = (inner.select_from(join) if join is not None else inner).subquery()
    fractions = [Fraction(q).limit_denominator(1000) for q in qs]
    lows = [(ranked.c.n - 1) * f.numerator // f.denominator for f in fractions]
    rows = (await session.execute(select(ranked.c.rn, ranked.c.v, ranked.c.n).where(or_(
        *(ranked.c.rn == low + 1 for low in lows), *(ranked.c.rn == low + 2 for low in lows))
    ))).all()
    if not rows:
        return [None for _ in qs]
    n = int(rows[0][2])
    at = {int(rn) - 1: float(v) for rn, v, _ in rows}
    out: list[float | None] = []
    for f in fractions:
        low, rest = divmod((n - 1) * f.numerator, f.denominator)
        high = min(low + 1, n - 1)
        out.append(round(at[low] + (at[high] - at[low]) * rest / f.denominator, 3))
    return out


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
    return {"counts": counts, "rates": {
        "containment_rate": _rate(counts["bot_resolved"], counts["conversations"]),
        "handoff_rate": _rate(counts["handed_off"], counts["conversations"]),
        "abstention_rate": _rate(counts["abstained"], counts["answers"])}}


def _total(by_language: dict[str, dict[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNTS, 0)
    for counts in by_language.values():
        for name, value in counts.items():
            total[name] += value
    return total


async def counts(session: AsyncSession, *, start: datetime, end: datetime,
                 lang: str | None = None, intent: str | None = None,
                 agent_id: int | None = None) -> dict[str, Any]:
    """``{"counts", "rates"}`` of one cohort."""
    where = cohort(start, end, lang=lang, intent=intent, agent_id=agent_id)
    row = (await session.execute(select(*_count_columns()).where(*where))).one()
    return _with_rates({name: int(value) for name, value in zip(COUNTS, row, strict=True)})


def local_midnight(moment: datetime, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


async def summary(session: AsyncSession, *, start: datetime, end: datetime,
                  tz: str | tzinfo = "UTC", lang: str | None = None, intent: str | None = None,
                  agent_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows for one period (the API's summary body)."""
    zone = _zone(tz)
    filters = {"lang": lang, "intent": intent, "agent_id": agent_id}
    where = cohort(start, end, **filters)  # type: ignore[arg-type]
    by_language, reasons, csat = await _cohort_outcomes(session, where)
    body: dict[str, Any] = {"from": start.astimezone(zone).isoformat(),
                            "to": end.astimezone(zone).isoformat(), "tz": str(zone),
                            "lang": lang, **_with_rates(_total(by_language))}
    body["handoff_reasons"] = dict(sorted(reasons.items(), key=lambda item: -item[1]))
    body["csat"] = {by: {"avg": round(csat[by][0] / csat[by][1], 2) if by in csat else None,
                         "n": csat[by][1] if by in csat else 0} for by in ("bot", "human")}
    first = await percentiles(session, F.first_response_s, (0.5, 0.9), where=where)
    resolution = await percentiles(session, F.resolution_s, (0.5, 0.9),
                                   where=[*where, F.resolved_at.is_not(None)])
    parses = ParseFact.__table__.join(F, F.conversation_id == ParseFact.conversation_id)
    turn_ms = await percentiles(session, ParseFact.turn_ms, (0.5, 0.95), where=where,
                                join=parses)
    body["first_response_s"] = {"p50": first[0], "p90": first[1]}
    body["resolution_s"] = {"p50": resolution[0], "p90": resolution[1]}
    body["turn_latency_ms"] = {"p50": turn_ms[0], "p95": turn_ms[1]}
    # One grouped pass over the cohort's parses gives both the intents and the NLU versions.
    intents: dict[str, int] = defaultdict(int)
    versions: dict[tuple[str | None, bool], list[int]] = {}
    for intent, version, canary, n, low, fallback in (await session.execute(
            select(ParseFact.intent, ParseFact.nlu_version, ParseFact.canary, func.count(),
                   _flag(ParseFact.low_confidence), _flag(ParseFact.fallback))
            .select_from(parses).where(*where)
            .group_by(ParseFact.intent, ParseFact.nlu_version, ParseFact.canary))).all():
        if intent is not None:
            intents[intent] += int(n)
        totals = versions.setdefault((version, bool(canary)), [0, 0, 0])
        for i, value in enumerate((n, low, fallback)):
            totals[i] += int(value)
    top = sorted(intents.items(), key=lambda item: (-item[1], item[0]))[:20]
    body["intents"] = [{"intent": name, "count": n} for name, n in top]
    body["nlu"] = [{"version": version, "canary": canary, "parses": n,
                    "low_confidence_rate": _rate(low, n), "fallback_rate": _rate(fallback, n)}
                   for (version, canary), (n, low, fallback) in versions.items()]
    body["by_language"] = {language: _with_rates(c) for language, c in sorted(by_language.items())}
    span = end - start
    body["previous"] = await counts(session, start=start - span, end=start, **filters)  # type: ignore[arg-type]
    today = local_midnight(now or datetime.now(UTC), zone)
    tomorrow = datetime.combine(today.date() + timedelta(days=1), time(0), tzinfo=zone)
    body["today"] = await counts(session, start=today, end=tomorrow, **filters)  # type: ignore[arg-type]
    return body


# ---------------------------------------------------------------- time series

def buckets(start: datetime, end: datetime, zone: tzinfo, interval: str) -> Iterator[datetime]:
    """Local bucket starts from the one holding ``start`` up to ``end`` (days follow the
    zone's calendar, so a DST day is 23 or 25 hours)."""
    if interval == "day":
        day = start.astimezone(zone).date()
        while (moment := datetime.combine(day, time(0), tzinfo=zone)) < end:
            yield moment
            day += timedelta(days=1)
        return
    moment = bucket_of(start, zone, "hour").astimezone(UTC)  # step in UTC: real hours
    while moment < end:
        yield moment.astimezone(zone)
        moment += timedelta(hours=1)


def bucket_of(moment: datetime, zone: tzinfo, interval: str) -> datetime:
    local = moment.astimezone(zone)
    if interval == "day":
        return datetime.combine(local.date(), time(0), tzinfo=zone)
    return local.replace(minute=0, second=0, microsecond=0)


def whole_hour_zone(zone: tzinfo, start: datetime, end: datetime) -> bool:
    """Whether the zone's offset is a whole number of hours on every day of the period."""
    moment = start
    while True:
        offset = moment.astimezone(zone).utcoffset() or timedelta()
        if offset.total_seconds() % 3600:
            return False
        if moment >= end:
            return True
        moment = min(moment + timedelta(hours=12), end)


def _on_the_hour(moment: datetime) -> bool:
    return moment.minute == moment.second == moment.microsecond == 0


async def timeseries(session: AsyncSession, *, metric: str, start: datetime, end: datetime,
                     tz: str | tzinfo = "UTC", interval: str = "day",
                     lang: str | None = None) -> list[dict[str, Any]]:
    """``[{"t": local ISO bucket start, "value"}]`` for one metric of the cohort; ``csat`` is
    the mean rating (None where nobody rated)."""
    if metric not in METRICS or interval not in INTERVALS:
        raise ValueError(f"unknown metric or interval: {metric}, {interval}")
    zone = _zone(tz)
    totals: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if whole_hour_zone(zone, start, end) and _on_the_hour(start.astimezone(UTC)) \
            and _on_the_hour(end.astimezone(UTC)):
        stmt = (select(HourlyRollup.hour, func.sum(HourlyRollup.count),
                       func.sum(HourlyRollup.sum))
                .where(HourlyRollup.hour >= start, HourlyRollup.hour < end,
                       HourlyRollup.metric == metric).group_by(HourlyRollup.hour))
        if lang:
            stmt = stmt.where(HourlyRollup.language == lang)
        for hour, count, total in (await session.execute(stmt)).all():
            bucket = totals[bucket_of(hour, zone, interval)]
            bucket[0] += int(count or 0)
            bucket[1] += float(total or 0.0)
    else:
        facts = (await session.execute(select(F).where(*cohort(start, end, lang=lang)))).scalars()
        for fact in facts:
            for (_, _, name, _), (count, total) in contributions(fact).items():
                if name == metric:
                    bucket = totals[bucket_of(fact.opened_at, zone, interval)]
                    bucket[0] += count
                    bucket[1] += total
    points = []
    for moment in buckets(start, end, zone, interval):
        n, summed = totals.get(moment, (0.0, 0.0))
        value: float | None = int(n)
        if metric == "csat":
            value = round(summed / n, 2) if n else None
        points.append({"t": moment.isoformat(), "value": value})
    return points
