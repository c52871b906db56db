"""Mailboxes: an extension of their own (VM-09) — colleagues leave a message directly, the owner listens

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 23:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mailbox') as batch:
        batch.add_column(sa.Column('extension', sa.String(length=16), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('mailbox') as batch:
        batch.drop_column('extension')
