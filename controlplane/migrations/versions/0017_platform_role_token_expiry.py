"""Permissions by role: the platform operator is a role of its own; API tokens may expire

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 09:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_token') as batch:
        batch.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
    # tenant-less extended admin tokens (the bootstrap token among them) were the platform operator's
    op.execute("UPDATE api_token SET role = 'platform' WHERE tenant_id IS NULL AND role = 'extended_admin'")


def downgrade() -> None:
    op.execute("UPDATE api_token SET role = 'extended_admin' WHERE role = 'platform'")
    with op.batch_alter_table('api_token') as batch:
        batch.drop_column('expires_at')
