"""fraud events; SIP accounts restricted to addresses

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 05:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sip_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_networks', sa.JSON(), server_default='[]', nullable=False))
    op.create_table(
        'fraud_event',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=True),
        sa.Column('time', sa.DateTime(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=64), server_default='', nullable=False),
        sa.Column('account', sa.String(length=320), server_default='', nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('detail', sa.JSON(), server_default='{}', nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
        sa.Column('acknowledged_by', sa.String(length=200), server_default='', nullable=False),
        sa.Column('ingested_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    for col in ('tenant_id', 'time', 'kind', 'user_id'):
        op.create_index(f'ix_fraud_event_{col}', 'fraud_event', [col], unique=False)


def downgrade() -> None:
    for col in ('tenant_id', 'time', 'kind', 'user_id'):
        op.drop_index(f'ix_fraud_event_{col}', table_name='fraud_event')
    op.drop_table('fraud_event')
    with op.batch_alter_table('sip_account', schema=None) as batch_op:
        batch_op.drop_column('allowed_networks')
