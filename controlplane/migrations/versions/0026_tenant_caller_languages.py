"""Tenants: the language a caller from the public network hears, by their number's prefix (ACD-21)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 04:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenant') as batch:
        batch.add_column(sa.Column('caller_languages', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('tenant') as batch:
        batch.drop_column('caller_languages')
