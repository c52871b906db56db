"""Hunt groups: waiting callers hear the greeting, music and their place in the queue (ACD-16/17)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 03:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hunt_group') as batch:
        batch.add_column(sa.Column('queue_music', sa.Boolean(), nullable=False, server_default='1'))
        batch.add_column(sa.Column('queue_announce_s', sa.Integer(), nullable=False, server_default='30'))


def downgrade() -> None:
    with op.batch_alter_table('hunt_group') as batch:
        batch.drop_column('queue_announce_s')
        batch.drop_column('queue_music')
