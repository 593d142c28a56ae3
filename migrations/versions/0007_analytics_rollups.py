"""analytics: hourly rollups of parses and latency histograms, filled from the facts

The summary reads its intents, NLU versions and latency percentiles from these instead of
joining a cohort to its parses (bench/analytics.py, 1M messages). The fold keeps them from now
on; the rows for the facts folded so far are computed here, with the fold's own keys: the
conversation's opening hour and language, ``analytics.histogram`` buckets. On SQLite both
tables are ``WITHOUT ROWID`` (a period is one range of the primary key, read from it alone).

Revision ID: 0007_analytics_rollups
Revises: 0005_analytics_indexes
Create Date: 2026-12-06 16:00:00.000000
"""
from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from analytics import histogram
from core.db import UTCDateTime

revision = '0007_analytics_rollups'
# 0005_analytics_indexes is the head (it follows 0006_customer_identity).
down_revision = '0005_analytics_indexes'
branch_labels = None
depends_on = None

CHUNK = 10_000


def upgrade() -> None:
    op.create_table('analytics_hourly_parses',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('intent', sa.String(length=64), nullable=False),
    sa.Column('nlu_version', sa.String(length=64), nullable=False),
    sa.Column('canary', sa.Boolean(), nullable=False),
    sa.Column('parses', sa.Integer(), nullable=False),
    sa.Column('low_confidence', sa.Integer(), nullable=False),
    sa.Column('fallback', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'language', 'intent', 'nlu_version', 'canary'),
    sqlite_with_rowid=False
    )
    op.create_table('analytics_hourly_latency',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'language', 'stage', 'bucket'),
    sqlite_with_rowid=False
    )
    _backfill(op.get_bind())


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _backfill(bind: sa.Connection) -> None:
    # The ORM's datetime type (core.db), so the rows are read and stored as the fold's are.
    conversations = sa.table('analytics_conversations', sa.column('conversation_id'),
                             sa.column('opened_at', UTCDateTime()), sa.column('language'),
                             sa.column('first_response_s', sa.Float()),
                             sa.column('resolved_at', UTCDateTime()),
                             sa.column('resolution_s', sa.Float()))
    facts = sa.table('analytics_parses', sa.column('conversation_id'), sa.column('intent'),
                     sa.column('nlu_version'), sa.column('canary', sa.Boolean()),
                     sa.column('low_confidence', sa.Boolean()),
                     sa.column('fallback', sa.Boolean()), sa.column('turn_ms', sa.Float()))
    parses = sa.table('analytics_hourly_parses', sa.column('hour', UTCDateTime()),
                      sa.column('language'), sa.column('intent'), sa.column('nlu_version'),
                      sa.column('canary', sa.Boolean()), sa.column('parses'),
                      sa.column('low_confidence'), sa.column('fallback'))
    latency = sa.table('analytics_hourly_latency', sa.column('hour', UTCDateTime()),
                       sa.column('language'), sa.column('stage'), sa.column('bucket'),
                       sa.column('count'))
    counted: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    buckets: dict[tuple[Any, ...], int] = defaultdict(int)
    c, p = conversations.c, facts.c
    rows = bind.execute(sa.select(c.opened_at, c.language, p.intent, p.nlu_version, p.canary,
                                  p.low_confidence, p.fallback, p.turn_ms)
                        .select_from(facts.join(conversations,
                                                c.conversation_id == p.conversation_id)))
    for opened_at, language, intent, version, canary, low, fallback, turn_ms in rows:
        hour = _hour(opened_at)
        cell = counted[(hour, language, intent or "", version or "", bool(canary))]
        cell[0] += 1
        cell[1] += int(bool(low))
        cell[2] += int(bool(fallback))
        index = histogram.bucket(turn_ms)
        if index is not None:
            buckets[(hour, language, 'turn_ms', index)] += 1
    for opened_at, language, first, resolved_at, resolution in bind.execute(sa.select(
            c.opened_at, c.language, c.first_response_s, c.resolved_at, c.resolution_s)):
        values = (('first_response_s', first),
                  ('resolution_s', resolution if resolved_at is not None else None))
        for stage, value in values:
            index = histogram.bucket(value)
            if index is not None:
                buckets[(_hour(opened_at), language, stage, index)] += 1
    _insert(bind, parses, [
        {'hour': hour, 'language': language, 'intent': intent, 'nlu_version': version,
         'canary': canary, 'parses': n, 'low_confidence': low, 'fallback': fallback}
        for (hour, language, intent, version, canary), (n, low, fallback) in counted.items()])
    _insert(bind, latency, [
        {'hour': hour, 'language': language, 'stage': stage, 'bucket': index, 'count': n}
        for (hour, language, stage, index), n in buckets.items()])


def _insert(bind: sa.Connection, table: sa.TableClause, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        bind.execute(table.insert(), rows[start:start + CHUNK])


def downgrade() -> None:
    op.drop_table('analytics_hourly_latency')
    op.drop_table('analytics_hourly_parses')
