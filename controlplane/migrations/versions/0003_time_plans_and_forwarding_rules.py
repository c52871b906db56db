"""time plans and forwarding rules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:43:04.406356
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('time_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('ranges', sa.JSON(), nullable=False),
    sa.Column('holidays_country', sa.String(length=2), nullable=True),
    sa.Column('holidays_subdiv', sa.String(length=8), nullable=True),
    sa.Column('closed_dates', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_time_plan_tenant_name')
    )
    with op.batch_alter_table('time_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_time_plan_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('forwarding_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target_user_id', sa.Integer(), nullable=True),
    sa.Column('target_number', sa.String(length=16), nullable=True),
    sa.Column('callers', sa.String(length=8), nullable=False),
    sa.Column('time_plan_id', sa.Integer(), nullable=True),
    sa.Column('when', sa.String(length=8), nullable=False),
    sa.Column('timeout_s', sa.Integer(), nullable=False),
    sa.Column('present', sa.String(length=10), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['target_user_id'], ['user.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['time_plan_id'], ['time_plan.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forwarding_rule_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_forwarding_rule_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forwarding_rule_user_id'))
        batch_op.drop_index(batch_op.f('ix_forwarding_rule_tenant_id'))

    op.drop_table('forwarding_rule')
    with op.batch_alter_table('time_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_time_plan_tenant_id'))

    op.drop_table('time_plan')
