"""Metrics over the facts and rollups the fold keeps; never over raw messages.

Attribution (see ``analytics.fold``): the cohort of a period is the conversations opened in
[start, end), and it is the denominator of every rate; hand-off wins over a bot resolution; a
resolution reopened within the window does not count; CSAT is split bot/human. Every figure
can be filtered by language.

Where a summary comes from: a period that starts and ends on whole UTC hours, without an
intent or agent filter, is read from the hourly rollups alone (``analytics_hourly``,
``analytics_hourly_parses``, ``analytics_hourly_latency``: a few thousand rows for 30 days,
whatever the traffic); any other is computed from the facts with the same definitions, the
percentiles included (read off a histogram of the same fixed buckets, ``analytics.histogram``:
±1.1 %), so both give the same figures.

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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics import histogram
from analytics.fold import contributions
from analytics.models import ConversationFact as F
from analytics.models import HourlyLatency, HourlyParses, HourlyRollup, ParseFact

METRICS = ("conversations", "handed_off", "bot_resolved", "answers", "abstained", "csat")
INTERVALS = ("hour", "day")
COUNTS = ("conversations", "bot_resolved", "handed_off", "answers", "abstained")
# Latency stage → the summary's key and its percentiles.
STAGES = {"first_response_s": ("first_response_s", (0.5, 0.9)),
          "resolution_s": ("resolution_s", (0.5, 0.9)),
          "turn_ms": ("turn_latency_ms", (0.5, 0.95))}
Outcomes = tuple[dict[str, dict[str, int]], dict[str, int], dict[str, tuple[float, int]]]
Versions = dict[tuple[str | None, bool], list[int]]


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


async def _cohort_outcomes(session: AsyncSession, where: list[ColumnElement[bool]]) -> Outcomes:
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
            total, seen = csat.get(by or "bot", (0.0, 0))
            csat[by or "bot"] = (total + float(rated), seen + int(raters))
    return by_language, reasons, csat


def _hours(model: Any, start: datetime, end: datetime, lang: str | None) -> list[Any]:
    """A rollup's rows for the cohort [start, end) (whole UTC hours), of one language."""
    where = [model.hour >= start, model.hour < end]
    return [*where, model.language == lang] if lang else where


async def _rollup_outcomes(session: AsyncSession, start: datetime, end: datetime,
                           lang: str | None) -> Outcomes:
    """``_cohort_outcomes`` from ``analytics_hourly``."""
    H = HourlyRollup
    rows = (await session.execute(
        select(H.language, H.metric, H.dimension, func.sum(H.count), func.sum(H.sum))
        .where(*_hours(H, start, end, lang)).group_by(H.language, H.metric, H.dimension)))
    by_language: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = defaultdict(int)
    csat: dict[str, tuple[float, int]] = {}
    for language, metric, dimension, count, total in rows.all():
        n = int(count or 0)
        if metric in COUNTS:
            by_language.setdefault(language, dict.fromkeys(COUNTS, 0))[metric] += n
        elif metric == "handoff_reason" and n:
            reasons[dimension] += n
        elif metric == "csat" and n:
            summed, seen = csat.get(dimension, (0.0, 0))
            csat[dimension] = (summed + float(total or 0.0), seen + n)
    # A language whose conversations all moved (learnt from the first parse) keeps zero rows.
    return ({language: c for language, c in by_language.items() if c["conversations"]},
            reasons, csat)


def _add_parses(versions: Versions, intents: dict[str, int], rows: Any) -> None:
    for intent, version, canary, n, low, fallback in rows:
        if not n:
            continue
        if intent:
            intents[intent] += int(n)
        totals = versions.setdefault((version or None, bool(canary)), [0, 0, 0])
        for i, value in enumerate((n, low, fallback)):
            totals[i] += int(value or 0)


async def _fact_parses(session: AsyncSession, where: list[ColumnElement[bool]]) -> tuple[
        dict[str, int], Versions]:
    """Intents and NLU versions: one grouped pass over the cohort's parses."""
    intents: dict[str, int] = defaultdict(int)
    versions: Versions = {}
    parses = ParseFact.__table__.join(F, F.conversation_id == ParseFact.conversation_id)
    _add_parses(versions, intents, (await session.execute(
        select(ParseFact.intent, ParseFact.nlu_version, ParseFact.canary, func.count(),
               _flag(ParseFact.low_confidence), _flag(ParseFact.fallback))
        .select_from(parses).where(*where)
        .group_by(ParseFact.intent, ParseFact.nlu_version, ParseFact.canary))).all())
    return intents, versions


async def _rollup_parses(session: AsyncSession, start: datetime, end: datetime,
                         lang: str | None) -> tuple[dict[str, int], Versions]:
    """``_fact_parses`` from ``analytics_hourly_parses``."""
    P = HourlyParses
    intents: dict[str, int] = defaultdict(int)
    versions: Versions = {}
    _add_parses(versions, intents, (await session.execute(
        select(P.intent, P.nlu_version, P.canary, func.sum(P.parses),
               func.sum(P.low_confidence), func.sum(P.fallback))
        .where(*_hours(P, start, end, lang))
        .group_by(P.intent, P.nlu_version, P.canary))).all())
    return intents, versions


async def _fact_latency(session: AsyncSession,
                        where: list[ColumnElement[bool]]) -> dict[str, dict[int, int]]:
    """The cohort's latency histograms from the facts: each column's distinct values and how
    often each came, bucketed here."""
    parses = ParseFact.__table__.join(F, F.conversation_id == ParseFact.conversation_id)
    columns = {"first_response_s": (F.first_response_s, [], None),
               "resolution_s": (F.resolution_s, [F.resolved_at.is_not(None)], None),
               "turn_ms": (ParseFact.turn_ms, [], parses)}
    out = {}
    for stage, (column, extra, join) in columns.items():
        stmt = select(column, func.count()).where(*where, *extra, column.is_not(None))
        if join is not None:
            stmt = stmt.select_from(join)
        out[stage] = histogram.of_values((await session.execute(stmt.group_by(column))).all())
    return out


async def _rollup_latency(session: AsyncSession, start: datetime, end: datetime,
                          lang: str | None) -> dict[str, dict[int, int]]:
    """The cohort's latency histograms, merged from ``analytics_hourly_latency``."""
    L = HourlyLatency
    out: dict[str, dict[int, int]] = {stage: {} for stage in STAGES}
    for stage, index, count in (await session.execute(
            select(L.stage, L.bucket, func.sum(L.count))
            .where(*_hours(L, start, end, lang)).group_by(L.stage, L.bucket))).all():
        if stage in out and count:
            out[stage][int(index)] = int(count)
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


def from_rollups(start: datetime, end: datetime, *, intent: str | None = None,
                 agent_id: int | None = None) -> bool:
    """Whether the rollups hold this cohort: whole UTC hours, no intent or agent filter."""
    return intent is None and agent_id is None and _on_the_hour(start.astimezone(UTC)) \
        and _on_the_hour(end.astimezone(UTC))


async def counts(session: AsyncSession, *, start: datetime, end: datetime,
                 lang: str | None = None, intent: str | None = None,
                 agent_id: int | None = None, facts: bool = False) -> dict[str, Any]:
    """``{"counts", "rates"}`` of one cohort (``facts``: never from the rollups)."""
    if not facts and from_rollups(start, end, intent=intent, agent_id=agent_id):
        by_language, _, _ = await _rollup_outcomes(session, start, end, lang)
        return _with_rates(_total(by_language))
    where = cohort(start, end, lang=lang, intent=intent, agent_id=agent_id)
    row = (await session.execute(select(*_count_columns()).where(*where))).one()
    return _with_rates({name: int(value) for name, value in zip(COUNTS, row, strict=True)})


def local_midnight(moment: datetime, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


async def summary(session: AsyncSession, *, start: datetime, end: datetime,
                  tz: str | tzinfo = "UTC", lang: str | None = None, intent: str | None = None,
                  agent_id: int | None = None, now: datetime | None = None,
                  facts: bool = False) -> dict[str, Any]:
    """Everything the dashboard shows for one period (the API's summary body). ``facts``
    computes it from the facts even where the rollups hold it (tests and the benchmark compare
    the two)."""
    zone = _zone(tz)
    filters: dict[str, Any] = {"lang": lang, "intent": intent, "agent_id": agent_id}
    if not facts and from_rollups(start, end, intent=intent, agent_id=agent_id):
        by_language, reasons, csat = await _rollup_outcomes(session, start, end, lang)
        latency = await _rollup_latency(session, start, end, lang)
        intents, versions = await _rollup_parses(session, start, end, lang)
    else:
        where = cohort(start, end, **filters)
        by_language, reasons, csat = await _cohort_outcomes(session, where)
        latency = await _fact_latency(session, where)
        intents, versions = await _fact_parses(session, where)
    body: dict[str, Any] = {"from": start.astimezone(zone).isoformat(),
                            "to": end.astimezone(zone).isoformat(), "tz": str(zone),
                            "lang": lang, **_with_rates(_total(by_language))}
    body["handoff_reasons"] = dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    body["csat"] = {by: {"avg": round(csat[by][0] / csat[by][1], 2) if by in csat else None,
                         "n": csat[by][1] if by in csat else 0} for by in ("bot", "human")}
    for stage, (name, qs) in STAGES.items():
        values = histogram.percentiles(latency[stage], qs)
        body[name] = {f"p{round(q * 100)}": value for q, value in zip(qs, values, strict=True)}
    top = sorted(intents.items(), key=lambda item: (-item[1], item[0]))[:20]
    body["intents"] = [{"intent": name, "count": n} for name, n in top]
    body["nlu"] = [{"version": version, "canary": canary, "parses": n,
                    "low_confidence_rate": _rate(low, n), "fallback_rate": _rate(fallback, n)}
                   for (version, canary), (n, low, fallback)
                   in sorted(versions.items(), key=lambda item: (item[0][0] or "", item[0][1]))]
    body["by_language"] = {language: _with_rates(c) for language, c in sorted(by_language.items())}
    span = end - start
    body["previous"] = await counts(session, start=start - span, end=start, facts=facts,
                                    **filters)
    today = local_midnight(now or datetime.now(UTC), zone)
    tomorrow = datetime.combine(today.date() + timedelta(days=1), time(0), tzinfo=zone)
    body["today"] = await counts(session, start=today, end=tomorrow, facts=facts, **filters)
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
