"""fraud policy: the tenant's ceiling of destination classes

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 05:56:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fraud_policy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbound', sa.String(length=16), server_default='special', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('fraud_policy', schema=None) as batch_op:
        batch_op.drop_column('outbound')
