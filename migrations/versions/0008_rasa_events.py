"""analytics: Rasa's own events (analytics/rasa_events.py)

Facts and an hourly rollup of the Rasa events analytics uses, the reader's cursor over the SQL
broker's table, and on PostgreSQL the schema ``rasa_events`` with the table Rasa's
SQLEventBroker writes (``events``: id, sender_id, data), kept apart from the tracker store's
own ``events`` table in ``public``.

Revision ID: 0008_rasa_events
Revises: 0007_analytics_rollups
Create Date: 2026-12-10 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_rasa_events'
down_revision = '0007_analytics_rollups'
branch_labels = None
depends_on = None

SCHEMA = 'rasa_events'  # analytics.rasa_events.SCHEMA


def upgrade() -> None:
    op.create_table('analytics_rasa_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index('ix_analytics_rasa_events_sender_id', 'analytics_rasa_events',
                    ['sender_id'])
    op.create_index('ix_analytics_rasa_events_at', 'analytics_rasa_events', ['at'])
    op.create_table('analytics_hourly_rasa',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'language', 'metric', 'name')
    )
    op.create_table('analytics_rasa_cursor',
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source')
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'CREATE SCHEMA IF NOT EXISTS {SCHEMA}')
        op.execute(f'CREATE TABLE IF NOT EXISTS {SCHEMA}.events (id SERIAL PRIMARY KEY, '
                   'sender_id VARCHAR(255), data TEXT)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'DROP SCHEMA IF EXISTS {SCHEMA} CASCADE')
    op.drop_table('analytics_rasa_cursor')
    op.drop_table('analytics_hourly_rasa')
    op.drop_index('ix_analytics_rasa_events_at', table_name='analytics_rasa_events')
    op.drop_index('ix_analytics_rasa_events_sender_id', table_name='analytics_rasa_events')
    op.drop_table('analytics_rasa_events')
