"""analytics: the outbox, facts, hourly rollups and the fold's cursor

Revision ID: 0004_analytics
Revises: 0003_articles
Create Date: 2026-12-06 12:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_analytics'
down_revision = '0003_articles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_events_conversation_id'), ['conversation_id'], unique=False)

    op.create_table('analytics_conversations',
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('turns', sa.Integer(), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('answers', sa.Integer(), nullable=False),
    sa.Column('abstentions', sa.Integer(), nullable=False),
    sa.Column('handed_off', sa.Boolean(), nullable=False),
    sa.Column('handoff_reason', sa.String(length=64), nullable=True),
    sa.Column('handed_off_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_agent_reply_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_s', sa.Float(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=8), nullable=True),
    sa.Column('resolution_s', sa.Float(), nullable=True),
    sa.Column('bot_resolved', sa.Boolean(), nullable=False),
    sa.Column('reopened', sa.Boolean(), nullable=False),
    sa.Column('csat', sa.Integer(), nullable=True),
    sa.Column('csat_by', sa.String(length=8), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('conversation_id')
    )
    with op.batch_alter_table('analytics_conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analytics_conversations_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_conversations_language'), ['language'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_conversations_agent_id'), ['agent_id'], unique=False)

    op.create_table('analytics_answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('abstained', sa.Boolean(), nullable=False),
    sa.Column('abstain_reason', sa.String(length=64), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('generator', sa.String(length=64), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('stage_ms', sa.JSON(), nullable=False),
    sa.Column('kept', sa.JSON(), nullable=False),
    sa.Column('dropped', sa.JSON(), nullable=False),
    sa.Column('top_score', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('analytics_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analytics_answers_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_answers_at'), ['at'], unique=False)

    op.create_table('analytics_parses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('intent', sa.String(length=64), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('nlu_version', sa.String(length=64), nullable=True),
    sa.Column('canary', sa.Boolean(), nullable=False),
    sa.Column('low_confidence', sa.Boolean(), nullable=False),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('turn_ms', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('analytics_parses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analytics_parses_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_analytics_parses_at'), ['at'], unique=False)

    op.create_table('analytics_hourly',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('dimension', sa.String(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('sum', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'language', 'metric', 'dimension')
    )
    cursor = op.create_table('analytics_cursor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(cursor, [{'id': 1, 'last_event_id': 0, 'updated_at': None}])


def downgrade() -> None:
    op.drop_table('analytics_cursor')
    op.drop_table('analytics_hourly')
    with op.batch_alter_table('analytics_parses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analytics_parses_at'))
        batch_op.drop_index(batch_op.f('ix_analytics_parses_conversation_id'))

    op.drop_table('analytics_parses')
    with op.batch_alter_table('analytics_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analytics_answers_at'))
        batch_op.drop_index(batch_op.f('ix_analytics_answers_conversation_id'))

    op.drop_table('analytics_answers')
    with op.batch_alter_table('analytics_conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analytics_conversations_agent_id'))
        batch_op.drop_index(batch_op.f('ix_analytics_conversations_language'))
        batch_op.drop_index(batch_op.f('ix_analytics_conversations_opened_at'))

    op.drop_table('analytics_conversations')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_events_conversation_id'))

    op.drop_table('outbox_events')
