"""hunt groups: queue time, screening, status and forwarding; number priority

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 02:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_s', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('anonymous', sa.String(length=8), server_default='allow', nullable=False))
        batch_op.add_column(sa.Column('status', sa.String(length=12), server_default='online', nullable=False))
        batch_op.add_column(sa.Column('vip', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('blocked', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('forwarding', sa.JSON(), server_default='[]', nullable=False))
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.drop_column('priority')
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        for name in ('forwarding', 'blocked', 'vip', 'status', 'anonymous', 'queue_s'):
            batch_op.drop_column(name)
