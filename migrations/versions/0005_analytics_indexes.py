"""analytics: covering indexes for a cohort and its parses (bench/analytics.py, 1M messages)

Revision ID: 0005_analytics_indexes
Revises: 0006_customer_identity
Create Date: 2026-12-06 13:00:00.000000
"""
from alembic import op


revision = '0005_analytics_indexes'
# 0006_customer_identity was written at the same time and revises 0004; following it keeps one
# head. Whoever reorders the two must swap both pointers (never point 0006 here as well).
down_revision = '0006_customer_identity'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('analytics_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_conversations_opened_at')
        batch_op.drop_index('ix_analytics_conversations_language')
        batch_op.create_index('ix_analytics_conversations_cohort',
                              ['opened_at', 'language', 'conversation_id'], unique=False)
        batch_op.create_index('ix_analytics_conversations_language_cohort',
                              ['language', 'opened_at', 'conversation_id'], unique=False)
    with op.batch_alter_table('analytics_parses', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_parses_conversation_id')
        batch_op.create_index('ix_analytics_parses_cohort',
                              ['conversation_id', 'intent', 'nlu_version', 'canary',
                               'low_confidence', 'fallback', 'turn_ms'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('analytics_parses', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_parses_cohort')
        batch_op.create_index('ix_analytics_parses_conversation_id', ['conversation_id'],
                              unique=False)
    with op.batch_alter_table('analytics_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_conversations_language_cohort')
        batch_op.drop_index('ix_analytics_conversations_cohort')
        batch_op.create_index('ix_analytics_conversations_language', ['language'], unique=False)
        batch_op.create_index('ix_analytics_conversations_opened_at', ['opened_at'],
                              unique=False)
