"""Mailboxes: wrong PINs by phone counted, and the lock they lead to

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 23:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mailbox') as batch:
        batch.add_column(sa.Column('pin_failures', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mailbox') as batch:
        batch.drop_column('locked_until')
        batch.drop_column('pin_failures')
