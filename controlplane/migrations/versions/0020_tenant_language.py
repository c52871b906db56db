"""Tenants: the language their callers hear announcements in ('' : the node's prompt_language)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 19:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenant') as batch:
        batch.add_column(sa.Column('language', sa.String(length=2), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('tenant') as batch:
        batch.drop_column('language')
