"""hunt groups and agent logins

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 01:36:48.896503
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hunt_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('extension', sa.String(length=16), nullable=False),
    sa.Column('rings', sa.JSON(), nullable=False),
    sa.Column('overflow_user_id', sa.Integer(), nullable=True),
    sa.Column('overflow_number', sa.String(length=16), nullable=True),
    sa.Column('overflow_group_id', sa.Integer(), nullable=True),
    sa.Column('max_waiting', sa.Integer(), nullable=False),
    sa.Column('presentation', sa.String(length=8), nullable=False),
    sa.Column('wrapup_s', sa.Integer(), nullable=False),
    sa.Column('callback_window_s', sa.Integer(), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('skills_fallback', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['overflow_group_id'], ['hunt_group.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['overflow_user_id'], ['user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'extension', name='uq_hunt_group_tenant_extension'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_hunt_group_tenant_name')
    )
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hunt_group_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('agent_login',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('logged_in', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['hunt_group.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skills', sa.JSON(), server_default='{}', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('skills')

    op.drop_table('agent_login')
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hunt_group_tenant_id'))

    op.drop_table('hunt_group')
