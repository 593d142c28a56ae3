"""conversations: the verified customer identity a host site vouched for at creation

Revision ID: 0006_customer_identity
Revises: 0004_analytics
Create Date: 2026-12-10 12:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_customer_identity'
# The latest revision when this was written (0005_analytics_indexes follows this one).
down_revision = '0004_analytics'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_identity', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('customer_identity')
