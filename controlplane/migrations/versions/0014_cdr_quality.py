"""CDRs: post-dial delay and media quality (MOS, jitter, loss, round trip) per call

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 08:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

COLUMNS = ("pdd_s", "mos", "jitter_ms", "loss_pct", "rtt_ms")


def upgrade() -> None:
    with op.batch_alter_table('cdr') as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cdr') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
