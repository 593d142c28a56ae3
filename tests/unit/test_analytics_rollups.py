"""The summary's rollups against the facts: a summary read from the hourly rollups equals one
computed from the facts, on a generated month of conversations folded in small batches, with
events recorded twice and a batch folded twice (rolled back, then folded again); the
migration's backfill gives the rows the fold keeps; the histograms' percentiles stay within
their stated resolution."""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics import histogram, metrics
from analytics.fold import fold_all, fold_once, hour_of
from analytics.models import (
    ConversationFact,
    FoldCursor,
    HourlyLatency,
    HourlyParses,
    ParseFact,
)
from bench.analytics import Scenario, Tally, bulk_insert, events_in_order
from core import db, outbox
from core.outbox import OutboxEvent

pytestmark = pytest.mark.unit
T = TypeVar("T")
START = datetime(2026, 10, 1, tzinfo=UTC)
MESSAGES = 3000


def run_db(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = db.create_engine(url)
        try:
            async with db.sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()
    return asyncio.run(main())


def generate(url: str) -> list[tuple[Any, ...]]:
    """The benchmark's mix (reopenings in and out of the window, languages learnt from the
    first parse, a canary NLU version), about a month and a half, as outbox rows."""
    rows = [(key, kind, cid, at, language, payload) for at, kind, key, cid, language, payload
            in events_in_order(Scenario(random.Random(14), START), MESSAGES, Tally())]

    async def insert(session: AsyncSession) -> None:
        await bulk_insert(session, rows)
    run_db(url, insert)
    return rows


async def _fold_with_a_retry(session_url: str) -> None:
    """Fold in batches of 97; every third batch is applied, rolled back and folded again."""
    engine = db.create_engine(session_url)
    maker = db.sessionmaker(engine)
    try:
        for turn in range(10_000):
            async with maker() as session:
                if turn % 3 == 0:
                    await fold_once(session, reopen_days=7, batch=97)
                    await session.rollback()
                folded = await fold_once(session, reopen_days=7, batch=97)
                await session.commit()
            if folded < 97:
                return
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def folded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('rollups') / 'analytics.db'}"
    db.upgrade_database(url)
    rows = generate(url)
    asyncio.run(_fold_with_a_retry(url))

    async def again(session: AsyncSession) -> None:  # a broker delivering events twice
        for key, kind, cid, at, language, payload in rows[::7]:
            await outbox.record(session, kind=kind, key=key, conversation_id=cid, at=at,
                                language=language, payload=payload)
    run_db(url, again)

    async def drain() -> int:
        engine = db.create_engine(url)
        try:
            return await fold_all(db.sessionmaker(engine), reopen_days=7)
        finally:
            await engine.dispose()
    assert asyncio.run(drain()) == 0
    return {"url": url, "events": len(rows)}


def periods() -> list[dict[str, Any]]:
    out = []
    for zone in (ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Shanghai"), UTC):
        end = datetime(2026, 11, 10, tzinfo=zone)
        out.append({"start": end - timedelta(days=30), "end": end, "tz": zone,
                    "now": end - timedelta(hours=1)})
    everything = {"start": START, "end": START + timedelta(days=60), "tz": UTC,
                  "now": START + timedelta(days=45, hours=3)}
    return [*out, everything]


def test_every_event_is_folded_once(folded):
    async def check(session: AsyncSession) -> tuple[int, int]:
        cursor = (await session.execute(select(FoldCursor.last_event_id))).scalar_one()
        events = (await session.execute(select(func.count()).select_from(OutboxEvent)))
        return int(cursor), int(events.scalar_one())
    assert run_db(folded["url"], check) == (folded["events"], folded["events"])


@pytest.mark.parametrize("lang", [None, "zh", "en"])
@pytest.mark.parametrize("index", range(4))
def test_a_summary_from_the_rollups_equals_one_from_the_facts(folded, index, lang):
    period = periods()[index]

    async def both(session: AsyncSession) -> tuple[dict[str, Any], dict[str, Any]]:
        return (await metrics.summary(session, **period, lang=lang),
                await metrics.summary(session, **period, lang=lang, facts=True))

    rollups, facts = run_db(folded["url"], both)
    assert rollups == facts
    assert rollups["counts"]["conversations"] > 0 and rollups["intents"]
    assert rollups["turn_latency_ms"]["p95"] is not None
    assert rollups["resolution_s"]["p90"] is not None


def test_the_rollups_equal_the_facts_row_by_row(folded):
    async def check(session: AsyncSession) -> None:
        expected_parses: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        expected_latency: dict[tuple[Any, ...], int] = defaultdict(int)
        rows = await session.execute(select(ConversationFact, ParseFact).join(
            ParseFact, ParseFact.conversation_id == ConversationFact.conversation_id))
        for fact, parse in rows.tuples():
            hour = hour_of(fact.opened_at)
            cell = expected_parses[(hour, fact.language, parse.intent or "",
                                    parse.nlu_version or "", parse.canary)]
            for i, flag in enumerate((True, parse.low_confidence, parse.fallback)):
                cell[i] += int(flag)
            if (index := histogram.bucket(parse.turn_ms)) is not None:
                expected_latency[(hour, fact.language, "turn_ms", index)] += 1
        for fact in (await session.execute(select(ConversationFact))).scalars():
            hour = hour_of(fact.opened_at)
            resolution = fact.resolution_s if fact.resolved_at is not None else None
            for stage, value in (("first_response_s", fact.first_response_s),
                                 ("resolution_s", resolution)):
                if (index := histogram.bucket(value)) is not None:
                    expected_latency[(hour, fact.language, stage, index)] += 1
        parses = {(r.hour, r.language, r.intent, r.nlu_version, r.canary):
                  [r.parses, r.low_confidence, r.fallback]
                  for r in (await session.execute(select(HourlyParses))).scalars()}
        latency = {(r.hour, r.language, r.stage, r.bucket): r.count
                   for r in (await session.execute(select(HourlyLatency))).scalars()
                   if r.count}
        assert parses == dict(expected_parses)
        assert latency == dict(expected_latency)

    run_db(folded["url"], check)


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", db.sync_url(url))
    return cfg


def test_the_migration_fills_the_rollups_as_the_fold_keeps_them(folded, tmp_path):
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(folded["url"].split("///", 1)[1]).read_bytes())
    url = f"sqlite:///{copy}"

    async def rows(session: AsyncSession) -> tuple[list[Any], list[Any]]:
        parses = sorted((r.hour, r.language, r.intent, r.nlu_version, r.canary, r.parses,
                         r.low_confidence, r.fallback)
                        for r in (await session.execute(select(HourlyParses))).scalars())
        latency = sorted((r.hour, r.language, r.stage, r.bucket, r.count)
                         for r in (await session.execute(select(HourlyLatency))).scalars()
                         if r.count)
        return parses, latency

    kept = run_db(url, rows)
    command.downgrade(_alembic(url), "0005_analytics_indexes")
    command.upgrade(_alembic(url), "head")
    assert run_db(url, rows) == kept


def test_a_summary_from_the_rollups_reads_no_fact(folded, tmp_path):
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(folded["url"].split("///", 1)[1]).read_bytes())
    url = f"sqlite:///{copy}"
    period = periods()[0]

    async def summary(session: AsyncSession) -> dict[str, Any]:
        return await metrics.summary(session, **period)

    before = run_db(url, summary)

    async def forget(session: AsyncSession) -> None:
        await session.execute(delete(ParseFact))
        await session.execute(delete(ConversationFact))
    run_db(url, forget)
    assert run_db(url, summary) == before


def _exact(values: list[float], q: float) -> float:
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_the_bucket_resolution(seed):
    rng = random.Random(seed)
    values = sorted(round(rng.lognormvariate(6.1, 1.5), 1) for _ in range(rng.randint(1, 3000)))
    merged: dict[int, int] = defaultdict(int)
    for part in (values[::2], values[1::2]):  # two hours' histograms, merged
        for index, n in histogram.of_values((v, 1) for v in part).items():
            merged[index] += n
    resolution = 2 ** (1 / (2 * histogram.PER_OCTAVE))  # the bucket's half-width, as a ratio
    for q, estimate in zip((0.5, 0.9, 0.95), histogram.percentiles(merged, (0.5, 0.9, 0.95)),
                           strict=True):
        exact = _exact(values, q)
        assert estimate is not None
        assert exact / resolution - 0.001 <= estimate <= exact * resolution + 0.001


def test_histogram_edges():
    assert histogram.percentiles({}, (0.5,)) == [None]
    assert histogram.bucket(None) is None and histogram.bucket("12") is None
    assert histogram.bucket(float("nan")) is None and histogram.bucket(True) is None
    assert histogram.bucket(0) == histogram.bucket(-3.0) == histogram.ZERO
    assert histogram.percentiles({histogram.ZERO: 3}, (0.5, 0.9)) == [0.0, 0.0]
    assert histogram.bucket(1.0) == 0 and histogram.bucket(2.0) == histogram.PER_OCTAVE
    assert histogram.bucket(1e-300) < histogram.bucket(1.0) < histogram.bucket(1e300)
