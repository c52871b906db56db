"""status, screening, boss-secretary, busy-on-busy

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:53:40.940373
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anonymous', sa.String(length=8), server_default='allow', nullable=False))

    op.create_table('caller_list_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=True),
    sa.Column('member_user_id', sa.Integer(), nullable=True),
    sa.Column('divert_user_id', sa.Integer(), nullable=True),
    sa.Column('divert_number', sa.String(length=16), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['divert_user_id'], ['user.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_user_id'], ['user.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('caller_list_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caller_list_entry_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_caller_list_entry_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_waiting', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('priority_override', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('secretary_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('anonymous', sa.String(length=8), server_default='allow', nullable=False))
        batch_op.add_column(sa.Column('status', sa.String(length=12), server_default='online', nullable=False))
        batch_op.add_column(sa.Column('status_message', sa.String(length=200), server_default='', nullable=False))
        batch_op.create_foreign_key('fk_user_secretary_id', 'user', ['secretary_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('anonymous')

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_secretary_id', type_='foreignkey')
        batch_op.drop_column('status_message')
        batch_op.drop_column('status')
        batch_op.drop_column('anonymous')
        batch_op.drop_column('secretary_id')
        batch_op.drop_column('priority_override')
        batch_op.drop_column('call_waiting')

    with op.batch_alter_table('caller_list_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_caller_list_entry_user_id'))
        batch_op.drop_index(batch_op.f('ix_caller_list_entry_tenant_id'))

    op.drop_table('caller_list_entry')
