"""knowledge-base editor: articles, article versions, audit log

Revision ID: 0003_articles
Revises: 0002_handoff
Create Date: 2026-11-30 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_articles'
down_revision = '0002_handoff'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('articles',
    sa.Column('id', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('lang', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by'], ['agents.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_articles_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_articles_lang'), ['lang'], unique=False)
        batch_op.create_index(batch_op.f('ix_articles_status'), ['status'], unique=False)

    op.create_table('article_versions',
    sa.Column('article_id', sa.String(length=80), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['agents.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('article_id', 'version')
    )
    op.create_table('kb_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['agents.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('kb_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_audit_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_audit_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_audit_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_audit_target'), ['target'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kb_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_audit_target'))
        batch_op.drop_index(batch_op.f('ix_kb_audit_created_at'))
        batch_op.drop_index(batch_op.f('ix_kb_audit_actor_id'))
        batch_op.drop_index(batch_op.f('ix_kb_audit_action'))

    op.drop_table('kb_audit')
    op.drop_table('article_versions')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_status'))
        batch_op.drop_index(batch_op.f('ix_articles_lang'))
        batch_op.drop_index(batch_op.f('ix_articles_kind'))

    op.drop_table('articles')
