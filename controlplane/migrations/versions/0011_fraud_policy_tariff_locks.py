"""fraud policy per tenant, tariff, fraud locks; CDR cost

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 05:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'fraud_policy',
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenant.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('user_limits', sa.JSON(), server_default='{}', nullable=False),
        sa.Column('tenant_limits', sa.JSON(), server_default='{}', nullable=False),
        sa.Column('warn_ratio', sa.Float(), nullable=False),
        sa.Column('spend_level', sa.Integer(), nullable=False),
        sa.Column('anomaly_level', sa.Integer(), server_default='2', nullable=False),
        sa.Column('allow_high_risk', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('notify_email', sa.String(length=254), server_default='', nullable=False),
        sa.Column('notify_webhook', sa.String(length=500), server_default='', nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'tariff_rate',
        sa.Column('prefix', sa.String(length=16), primary_key=True),
        sa.Column('rate_per_min', sa.Float(), nullable=False),
        sa.Column('currency', sa.String(length=3), server_default='EUR', nullable=False),
        sa.Column('description', sa.String(length=200), server_default='', nullable=False),
    )
    op.create_table(
        'fraud_lock',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('tenant_id', sa.Integer(), sa.ForeignKey('tenant.id', ondelete='CASCADE'), nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('user.id', ondelete='CASCADE'), nullable=True),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('dest_class', sa.String(length=16), server_default='', nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('set_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('lifted_at', sa.DateTime(), nullable=True),
        sa.Column('lifted_by', sa.String(length=200), server_default='', nullable=False),
        sa.Column('lift_reason', sa.String(length=200), server_default='', nullable=False),
    )
    op.create_index('ix_fraud_lock_tenant_id', 'fraud_lock', ['tenant_id'])
    op.create_index('ix_fraud_lock_user_id', 'fraud_lock', ['user_id'])
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer_user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dest_class', sa.String(length=16), server_default='', nullable=False))
        batch_op.create_index('ix_cdr_payer_user_id', ['payer_user_id'])
        batch_op.add_column(sa.Column('cost', sa.Float(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.drop_index('ix_cdr_payer_user_id')
        batch_op.drop_column('cost')
        batch_op.drop_column('dest_class')
        batch_op.drop_column('payer_user_id')
    op.drop_index('ix_fraud_lock_user_id', table_name='fraud_lock')
    op.drop_index('ix_fraud_lock_tenant_id', table_name='fraud_lock')
    op.drop_table('fraud_lock')
    op.drop_table('tariff_rate')
    op.drop_table('fraud_policy')
