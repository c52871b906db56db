"""CDRs: index on (payer_user_id, start_time) for the fraud controls' spend and baselines

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 06:20:00
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_cdr_payer_start', 'cdr', ['payer_user_id', 'start_time'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cdr_payer_start', table_name='cdr')
