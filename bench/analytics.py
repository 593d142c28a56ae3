"""Analytics at scale: the fold's rate and the dashboard's query latencies over 1,000,000
messages.

Generates synthetic conversations (English and Chinese, about 45 days) as **outbox events**
(the rows ``core.outbox.record`` writes, bulk-inserted in id order, so the fold does all the
work), folds them with ``analytics.fold`` in its own batches, then times the 30-day
``analytics.metrics.summary`` and ``timeseries`` (day and hour, Europe/Berlin and
Asia/Shanghai, with and without a language filter) over several runs.

The mix: bot-resolved conversations (some rated), hand-offs for each reason (a system notice
unless the customer asked, most claimed by one of 25 agents, who reply and mostly resolve;
ratings by humans), abandoned ones, knowledge answers with abstentions, low-confidence and
fallback parses, resolutions reopened inside and outside the 7-day window (some resolved
again), intents by topic, and NLU versions ``v7`` then ``v8`` with ``v8`` on a 10% canary for
a week in between. A third of Chinese conversations open with the ``en`` locale: the fold
learns their language from the first parse.

Everything lives in a temporary folder (SQLite) or a throwaway database created on the
PostgreSQL server and dropped at the end:

    .venv/bin/python bench/analytics.py --database sqlite [--messages 1000000] [--report r.json]
    .venv/bin/python bench/analytics.py --database postgresql \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

``--keep`` leaves the database in place (its URL is printed); ``--reuse URL`` times the
queries again on such a database (migrations are applied first, so a new index is built or a
new rollup filled from the facts).

Besides the timings, the report says whether the summary read from the rollups equals the one
computed from the facts (``summary_from_facts_equal``, with the seconds the latter took), and
gives the exact percentiles of the facts beside the histogram ones (``percentiles``).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import metrics
from analytics.fold import BATCH, fold_once
from analytics.models import (
    AnswerFact,
    ConversationFact,
    HourlyLatency,
    HourlyParses,
    HourlyRollup,
    ParseFact,
)
from core import db
from core.outbox import OutboxEvent

logger = logging.getLogger("bench.analytics")

DAYS = 45
REOPEN_DAYS = 7
ZONES = ("Europe/Berlin", "Asia/Shanghai")
AGENTS = 25
KNOWLEDGE_INTENTS = ("return_policy", "shipping_time", "product_info", "warranty")
TOPIC_INTENTS = (*KNOWLEDGE_INTENTS, "order_status", "billing", "cancel_order", "change_address")
HANDOFF_REASONS = ("customer_request", "negative_sentiment", "low_confidence",
                   "knowledge_abstained")
HANDOFF_WEIGHTS = (0.5, 0.15, 0.2, 0.15)
ABSTAIN_REASONS = ("no_support", "low_coverage", "no_results")
QUESTIONS = {"en": ("How long do I have to return a kettle?", "When will my parcel arrive?",
                    "Does the X200 vacuum work on carpets?", "Is the warranty two years?"),
             "zh": ("退货期限是多久？", "我的包裹什么时候到？", "X200 吸尘器能用在地毯上吗？",
                    "保修期是两年吗？")}
# Share of the day's conversations per local hour (quiet nights, busy evenings).
DIURNAL = [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3.5, 4.5, 5, 5, 4.5, 4.5, 5, 5, 4.5, 4.5, 5, 5.5,
           5.5, 4.5, 3, 2]
Event = tuple[datetime, str, str, str, str | None, dict[str, Any]]  # at kind key cid lang payload


@dataclass
class Tally:
    conversations: int = 0
    messages: int = 0
    customer_messages: int = 0
    events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


class Scenario:
    """Synthetic conversations, each a list of outbox events in time order."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng, self.start = rng, start
        self.ids = itertools.count(1)

    def _nlu(self, at: datetime) -> tuple[str, bool]:
        day = (at - self.start).days
        if day < 28:
            return "v7", False
        if day < 35:
            return ("v8", True) if self.rng.random() < 0.1 else ("v7", False)
        return "v8", False

    def opening_times(self, count: int) -> list[tuple[datetime, str]]:
        """``count`` (opened_at, language) pairs over the period, sorted."""
        out = []
        for _ in range(count):
            lang = "zh" if self.rng.random() < 0.4 else "en"
            offset = 1 if lang == "en" else 8  # the customers' local hour, roughly
            hour = (self.rng.choices(range(24), DIURNAL)[0] - offset) % 24
            moment = self.start + timedelta(days=self.rng.randrange(DAYS), hours=hour,
                                            seconds=self.rng.uniform(0, 3600))
            out.append((moment, lang))
        out.sort()
        return out

    def conversation(self, opened: datetime, lang: str) -> list[Event]:
        rng, events = self.rng, []
        cid = uuid.UUID(int=rng.getrandbits(128)).hex[:24]
        locale = "en" if lang == "zh" and rng.random() < 0.33 else lang

        def add(at: datetime, kind: str, payload: dict[str, Any] | None = None,
                language: str | None = None, key: str | None = None) -> None:
            events.append((at, kind, key or f"{kind}:{next(self.ids)}", cid, language,
                           payload or {}))

        def message(at: datetime, role: str, *, system: bool | None = None,
                    agent_id: int | None = None) -> str:
            mid = f"m{next(self.ids)}"
            add(at, "message", {"message_id": mid, "role": role, "system": system,
                                "agent_id": agent_id}, key=f"message:{mid}")
            return mid

        def bot_turn(at: datetime, intent: str) -> datetime:
            mid = message(at, "customer")
            turn_ms = round(min(rng.lognormvariate(6.1, 0.5), 20000), 1)
            done = at + timedelta(milliseconds=turn_ms)
            version, canary = self._nlu(at)
            confidence = round(rng.uniform(0.2, 0.45) if intent == "nlu_fallback" else
                               rng.betavariate(8, 1.5), 3)
            add(done, "nlu.parse", {"message_id": mid, "intent": intent,
                                    "confidence": confidence, "nlu_version": version,
                                    "canary": canary, "fallback": intent == "nlu_fallback",
                                    "turn_ms": turn_ms, "replayed": False},
                language=lang, key=f"nlu.parse:{mid}")
            reply = message(done, "bot")
            if intent in KNOWLEDGE_INTENTS:
                abstained = rng.random() < 0.12
                add(done, "answer", {
                    "message_id": mid if abstained else reply,
                    "question": rng.choice(QUESTIONS[lang]), "intent": intent,
                    "sources": [] if abstained else [f"kb-{intent}"],
                    "abstained": abstained,
                    "abstain_reason": rng.choice(ABSTAIN_REASONS) if abstained else None,
                    "generator": None if abstained else "extractive",
                    "audit": {"generator": "extractive", "latency_ms": turn_ms * 0.6,
                              "stage_ms": {"retrieve": turn_ms * 0.3},
                              "kept": [] if abstained else [f"kb-{intent}#1"],
                              "dropped": [], "top_score": round(rng.uniform(0.2, 0.9), 3)}},
                    language=lang, key=f"answer:{mid}")
            return done + timedelta(seconds=rng.uniform(8, 90))

        def resolve(at: datetime, by: str, agent: int | None = None) -> None:
            add(at, "resolved", {"by": by, "actor": f"agent:{agent}" if agent else "bot"})

        add(opened, "conversation.opened", language=locale, key=f"opened:{cid}")
        outcome = rng.choices(("bot", "handoff", "abandoned"), (0.5, 0.3, 0.2))[0]
        turns = rng.choices((1, 2, 3, 4, 5, 6), (35, 30, 17, 9, 5, 4))[0]
        at = opened + timedelta(seconds=rng.uniform(0.5, 5))
        topic = rng.choice(TOPIC_INTENTS)
        for turn in range(turns):
            if turn == 0 and rng.random() < 0.3:
                intent = "greet"
            elif rng.random() < 0.06:
                intent = "nlu_fallback"
            elif outcome == "bot" and turn == turns - 1 and turns > 1:
                intent = "goodbye"
            else:
                intent = topic if rng.random() < 0.8 else rng.choice(TOPIC_INTENTS)
            at = bot_turn(at, intent)
        agent = None
        resolved_at = None
        if outcome == "bot":
            resolved_at = at
            resolve(at, "bot")
        elif outcome == "handoff":
            reason = rng.choices(HANDOFF_REASONS, HANDOFF_WEIGHTS)[0]
            add(at, "handoff", {"reason": reason, "actor": "bot"})
            if reason != "customer_request":
                message(at, "bot", system=True)
            if rng.random() < 0.85:
                agent = rng.randint(1, AGENTS)
                claimed = at + timedelta(seconds=min(rng.lognormvariate(4.8, 1.2), 7200))
                add(claimed, "assigned", {"agent_id": agent})
                replied = claimed + timedelta(seconds=rng.uniform(10, 90))
                mid = message(replied, "agent", agent_id=agent)
                add(replied, "agent.first_reply", {
                    "agent_id": agent, "message_id": mid, "queued_at": at.isoformat(),
                    "first_response_s": (replied - at).total_seconds()},
                    key=f"agent.first_reply:{mid}")
                at = replied
                for _ in range(rng.randint(0, 3)):
                    at += timedelta(seconds=rng.uniform(15, 120))
                    message(at, "customer")
                    at += timedelta(seconds=rng.uniform(20, 180))
                    message(at, "agent", agent_id=agent)
                if rng.random() < 0.9:
                    resolved_at = at + timedelta(seconds=30)
                    resolve(resolved_at, "agent", agent)
        if resolved_at is not None:
            if rng.random() < (0.35 if agent else 0.25):
                score = rng.choices((1, 2, 3, 4, 5), (5, 5, 12, 30, 48))[0]
                add(resolved_at + timedelta(seconds=rng.uniform(5, 120)), "csat",
                    {"score": score, "human": agent is not None})
            if rng.random() < 0.06:  # reopened, inside or outside the window
                reopened = resolved_at + timedelta(days=min(rng.lognormvariate(0.8, 1.0), 20))
                add(reopened, "reopened", {"actor": "customer"})
                again = bot_turn(reopened, topic)
                if rng.random() < 0.6:
                    resolve(again, "bot")
        events.sort(key=lambda e: e[0])
        return events


def events_in_order(scenario: Scenario, target_messages: int, tally: Tally) -> Iterator[Event]:
    """Every conversation's events merged in time order (the outbox's commit order), until
    ``target_messages`` messages were generated."""
    probe = Scenario(random.Random(1), scenario.start)
    mean = statistics.fmean(sum(e[1] == "message" for e in probe.conversation(
        scenario.start, "en" if i % 5 else "zh")) for i in range(3000))
    openings = scenario.opening_times(int(target_messages / mean * 1.1) + 10)
    pending: list[tuple[datetime, int, Event]] = []
    order = itertools.count()
    for opened, lang in openings:
        while pending and pending[0][0] <= opened:
            yield heapq.heappop(pending)[2]
        events = scenario.conversation(opened, lang)
        tally.conversations += 1
        for event in events:
            if event[1] == "message":
                tally.messages += 1
                tally.customer_messages += event[5]["role"] == "customer"
            heapq.heappush(pending, (event[0], next(order), event))
        if tally.messages >= target_messages:
            break
    while pending:
        yield heapq.heappop(pending)[2]


COLUMNS = ("key", "kind", "conversation_id", "at", "language", "payload")


async def bulk_insert(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    """The rows ``core.outbox.record`` writes, in bulk: COPY on PostgreSQL, one executemany on
    SQLite, each value converted by the column type's own bind processor (the stored form is
    the ORM's)."""
    connection = await session.connection()
    dialect = connection.dialect
    table = OutboxEvent.__table__
    if dialect.name == "postgresql":
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.cursor() as cursor, cursor.copy(
                f"COPY outbox_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for key, kind, cid, at, language, payload in rows:
                await copy.write_row((key, kind, cid, at, language, json.dumps(payload)))
        return
    processors = [table.c[name].type.bind_processor(dialect) for name in COLUMNS]
    converted = [tuple(value if process is None else process(value)
                       for process, value in zip(processors, row, strict=True)) for row in rows]
    await connection.exec_driver_sql(
        f"INSERT INTO outbox_events ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
        converted)  # type: ignore[arg-type]


async def generate(maker: async_sessionmaker[AsyncSession], target: int,
                   start: datetime) -> Tally:
    """Insert the events as outbox rows in id (= time) order, 100,000 a transaction."""
    tally, rows = Tally(), list[tuple[Any, ...]]()
    scenario = Scenario(random.Random(2026), start)

    async def flush() -> None:
        async with maker() as session:
            await bulk_insert(session, rows)
            await session.commit()
        rows.clear()

    for at, kind, key, cid, language, payload in events_in_order(scenario, target, tally):
        rows.append((key, kind, cid, at, language, payload))
        tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
        tally.events += 1
        if len(rows) >= 100_000:
            await flush()
            logger.info("generated %d events", tally.events)
    await flush()
    return tally


async def fold(maker: async_sessionmaker[AsyncSession], total: int) -> float:
    """``analytics.fold.fold_all``'s loop, with progress: seconds to fold every event."""
    started, done, shown = time.perf_counter(), 0, 0
    while True:
        async with maker() as session:
            folded = await fold_once(session, reopen_days=REOPEN_DAYS)
            await session.commit()
        done += folded
        if done - shown >= 200_000 or folded < BATCH:
            shown = done
            elapsed = time.perf_counter() - started
            logger.info("folded %d/%d events in %.0f s (%.0f events/s)", done, total, elapsed,
                        done / elapsed)
        if folded < BATCH:
            return time.perf_counter() - started


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {"query": self.name, "runs": len(self.seconds),
                "p50_ms": round(statistics.median(self.seconds) * 1000, 1),
                "max_ms": round(max(self.seconds) * 1000, 1),
                "cpu_p50_ms": round(statistics.median(self.cpu) * 1000, 1)}


def _server_cpu(pid: int | None) -> float:
    """CPU seconds a PostgreSQL backend (on this machine) has used; 0 for SQLite, which runs
    in this process."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backends_cpu(maker: async_sessionmaker[AsyncSession]) -> float:
    """CPU seconds used by the PostgreSQL backends connected to the bench's database (the
    pool keeps its connections, so before and after compare the same processes)."""
    async with maker() as session:
        if session.get_bind().dialect.name != "postgresql":
            return 0.0
        pids = (await session.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars()
        return sum(_server_cpu(pid) for pid in pids)


async def time_queries(maker: async_sessionmaker[AsyncSession], last_day: datetime,
                       runs: int) -> list[Timing]:
    """The 30 days up to the local midnight after ``last_day``, in each zone; "today" is that
    period's last day. Wall time, and CPU time (this process plus, on PostgreSQL, the server's
    backend): on a shared machine the CPU time is what an idle core would take."""
    cases: list[tuple[str, Any]] = []
    for name in ZONES:
        zone = ZoneInfo(name)
        end = datetime.combine(last_day.astimezone(zone).date() + timedelta(days=1), clock(0),
                               tzinfo=zone)
        start = end - timedelta(days=30)
        for lang in (None, "zh"):
            label = f"{name} lang={lang or 'all'}"
            cases.append((f"summary 30 d, {label}", lambda s, z=zone, a=start, b=end, la=lang:
                          metrics.summary(s, start=a, end=b, tz=z, lang=la,
                                          now=b - timedelta(hours=1))))
            for interval in ("day", "hour"):
                for metric in ("conversations", "csat"):
                    cases.append((f"timeseries {metric} by {interval}, {label}",
                                  lambda s, z=zone, a=start, b=end, la=lang, i=interval,
                                  m=metric: metrics.timeseries(s, metric=m, start=a, end=b,
                                                               tz=z, interval=i, lang=la)))
    timings = {name: Timing(name) for name, _ in cases}
    for _ in range(runs):
        for name, query in cases:
            async with maker() as session:
                backend = None
                if session.get_bind().dialect.name == "postgresql":
                    backend = (await session.execute(text("SELECT pg_backend_pid()")))\
                        .scalar_one()
                cpu, server = time.process_time(), _server_cpu(backend)
                started = time.perf_counter()
                await query(session)
                timings[name].seconds.append(time.perf_counter() - started)
                timings[name].cpu.append(time.process_time() - cpu
                                         + _server_cpu(backend) - server)
                await session.rollback()
    return list(timings.values())


async def table_counts(maker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with maker() as session:
        return {model.__tablename__: int((await session.execute(
            select(func.count()).select_from(model))).scalar_one())
            for model in (OutboxEvent, ConversationFact, ParseFact, AnswerFact, HourlyRollup,
                          HourlyParses, HourlyLatency)}


def _exact(values: list[float], q: float) -> float | None:
    """numpy.percentile's default (linear between the closest ranks) over sorted values."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return round(values[low] + (values[high] - values[low]) * (position - low), 3)


async def exact_percentiles(session: AsyncSession, start: datetime,
                            end: datetime) -> dict[str, dict[str, float | None]]:
    """The cohort's percentiles from every value in the facts (what the summary computed
    before it read histograms), to show the histograms' error."""
    F, P = ConversationFact, ParseFact
    cohort = [F.opened_at >= start, F.opened_at < end]
    queries = {
        "first_response_s": select(F.first_response_s).where(*cohort,
                                                             F.first_response_s.is_not(None)),
        "resolution_s": select(F.resolution_s).where(*cohort, F.resolved_at.is_not(None),
                                                     F.resolution_s.is_not(None)),
        "turn_latency_ms": select(P.turn_ms).select_from(P.__table__.join(
            F, F.conversation_id == P.conversation_id)).where(*cohort, P.turn_ms.is_not(None))}
    out = {}
    for name, query in queries.items():
        values = sorted(float(v) for v in (await session.execute(query)).scalars()
                        if v is not None)
        qs = (0.5, 0.95) if name == "turn_latency_ms" else (0.5, 0.9)
        out[name] = {f"p{round(q * 100)}": _exact(values, q) for q in qs}
    return out


def postgres_database(server_url: str, name: str, *, create: bool) -> str:
    """Create (or drop) a throwaway database on the server; returns its URL."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(db.sync_url(server_url))
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if create:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


@contextmanager
def throwaway_database(args: argparse.Namespace) -> Iterator[str]:
    """A SQLite file in a temporary folder or a new database on the PostgreSQL server; removed
    afterwards unless ``--keep``."""
    if args.database == "sqlite":
        folder = tempfile.mkdtemp(prefix="parley-bench-analytics-")
        url = f"sqlite:///{folder}/bench.db"

        def remove() -> None:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        server = args.database_url or "postgresql://postgres@127.0.0.1:5432/postgres"
        name = f"parley_bench_{uuid.uuid4().hex[:8]}"
        url = postgres_database(server, name, create=True)

        def remove() -> None:
            postgres_database(server, name, create=False)
    try:
        yield url
    finally:
        if args.keep:
            logger.info("kept %s", url)
        else:
            remove()


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    db.upgrade_database(url)
    engine = db.create_engine(url)
    maker = db.sessionmaker(engine)
    report: dict[str, Any] = {"database": args.database, "messages_target": args.messages}
    try:
        if not args.reuse:
            start = datetime.combine(datetime.now(UTC).date() - timedelta(days=DAYS + 1),
                                     clock(0), tzinfo=UTC)
            started = time.perf_counter()
            tally = await generate(maker, args.messages, start)
            generated_s = time.perf_counter() - started
            logger.info("generated %d events (%d messages, %d conversations) in %.0f s",
                        tally.events, tally.messages, tally.conversations, generated_s)
            cpu, server = time.process_time(), await _backends_cpu(maker)
            fold_s = await fold(maker, tally.events)
            fold_cpu = time.process_time() - cpu + await _backends_cpu(maker) - server
            report.update({
                "conversations": tally.conversations, "messages": tally.messages,
                "customer_messages": tally.customer_messages, "events": tally.events,
                "events_by_kind": tally.kinds, "generate_s": round(generated_s, 1),
                "fold_s": round(fold_s, 1), "fold_cpu_s": round(fold_cpu, 1),
                "fold_events_per_s": round(tally.events / fold_s),
                "fold_customer_messages_per_s": round(tally.customer_messages / fold_s)})
        async with maker() as session:
            last = (await session.execute(select(func.max(ConversationFact.opened_at))))\
                .scalar_one()
            if session.get_bind().dialect.name == "postgresql":
                # What autovacuum does after a bulk change in production (it is off on the
                # development machine); SQLite keeps no statistics and Parley never asks it to.
                await session.execute(text("ANALYZE"))
                await session.commit()
        report["tables"] = await table_counts(maker)
        timings = await time_queries(maker, last, args.runs)
        report["queries"] = [t.row() for t in timings]
        async with maker() as session:  # what the dashboard shows, to judge the mix
            zone = ZoneInfo(ZONES[0])
            end = datetime.combine(last.astimezone(zone).date() + timedelta(days=1), clock(0),
                                   tzinfo=zone)
            period: dict[str, Any] = {"start": end - timedelta(days=30), "end": end,
                                      "tz": zone, "now": end - timedelta(hours=1)}
            report["summary"] = await metrics.summary(session, **period)
            started = time.perf_counter()
            from_facts = await metrics.summary(session, **period, facts=True)
            report["summary_from_facts_s"] = round(time.perf_counter() - started, 2)
            report["summary_from_facts_equal"] = from_facts == report["summary"]
            report["percentiles"] = {
                "histogram": {name: report["summary"][name] for name in
                              ("first_response_s", "resolution_s", "turn_latency_ms")},
                "exact": await exact_percentiles(session, period["start"], end)}
    finally:
        await engine.dispose()
    return report


def show(report: dict[str, Any]) -> None:
    if "fold_s" in report:
        print(f"{report['database']}: {report['messages']:,} messages "
              f"({report['customer_messages']:,} from customers), "
              f"{report['conversations']:,} conversations, {report['events']:,} events; "
              f"generated in {report['generate_s']} s")
        print(f"fold: {report['fold_s']} s ({report['fold_cpu_s']} s of CPU) = "
              f"{report['fold_events_per_s']:,} events/s = "
              f"{report['fold_customer_messages_per_s']:,} customer messages/s")
    print("tables:", ", ".join(f"{k} {v:,}" for k, v in report["tables"].items()))
    if "summary_from_facts_equal" in report:
        print(f"summary from the rollups equals the one from the facts: "
              f"{report['summary_from_facts_equal']} (facts: {report['summary_from_facts_s']} s)")
        print("percentiles (histogram vs exact):", json.dumps(report["percentiles"]))
    for row in report["queries"]:
        flag = "" if row["max_ms"] <= 1000 else "  > 1 s"
        print(f"{row['query']:<62} p50 {row['p50_ms']:>8.1f} ms  max {row['max_ms']:>8.1f} ms"
              f"  cpu p50 {row['cpu_p50_ms']:>8.1f} ms{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL: the server to create the throwaway database on "
                             "(default postgresql://postgres@127.0.0.1:5432/postgres)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each query")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument("--reuse", default=None, metavar="URL",
                        help="time the queries only, on a database a --keep run left")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.reuse:
        report = asyncio.run(run(args, args.reuse))
    else:
        with throwaway_database(args) as url:
            report = asyncio.run(run(args, url))
    show(report)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
