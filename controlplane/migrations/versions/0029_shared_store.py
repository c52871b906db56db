"""Shared store (issue 22, docs/cluster.md): recordings kept in the cluster database, and the feed of changes each
control plane applies to its own node (files, mailboxes)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 22:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stored_file',
        sa.Column('path', sa.String(255), primary_key=True),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'cluster_change',
        sa.Column('seq', sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('key', sa.String(255), nullable=False),
        sa.Column('origin', sa.String(64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_cluster_change_at', 'cluster_change', ['at'], unique=False)
    counter = op.create_table(
        'change_counter',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('seq', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.bulk_insert(counter, [{'id': 1, 'seq': 0}])


def downgrade() -> None:
    op.drop_table('change_counter')
    op.drop_index('ix_cluster_change_at', table_name='cluster_change')
    op.drop_table('cluster_change')
    op.drop_table('stored_file')
