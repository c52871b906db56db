"""Hunt groups: the service-level time (answered within N seconds), for a real service level beside the answer rate

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hunt_group') as batch:
        batch.add_column(sa.Column('service_level_s', sa.Integer(), nullable=False, server_default='20'))


def downgrade() -> None:
    with op.batch_alter_table('hunt_group') as batch:
        batch.drop_column('service_level_s')
