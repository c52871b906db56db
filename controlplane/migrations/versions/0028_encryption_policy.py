"""Encryption policy (issue 24, docs/tls.md): TLS required for signalling, SRTP required for media — per tenant and
per SIP account; SIP accounts of browsers (webrtc, docs/webrtc.md)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('tenant', 'sip_account'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('require_tls', sa.Boolean(), nullable=False, server_default='0'))
            batch.add_column(sa.Column('require_srtp', sa.Boolean(), nullable=False, server_default='0'))
    with op.batch_alter_table('sip_account') as batch:
        batch.add_column(sa.Column('webrtc', sa.Boolean(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('sip_account') as batch:
        batch.drop_column('webrtc')
    for table in ('tenant', 'sip_account'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('require_srtp')
            batch.drop_column('require_tls')
