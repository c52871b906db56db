"""profiles, per-account settings, feature-code rules

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 01:00:32.929937
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('profile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=True),
    sa.Column('clir', sa.Boolean(), nullable=True),
    sa.Column('outbound', sa.String(length=16), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'code', name='uq_profile_user_code'),
    sa.UniqueConstraint('user_id', 'name', name='uq_profile_user_name')
    )
    with op.batch_alter_table('profile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_profile_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_profile_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('profile_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=12), server_default='api', nullable=False))
        batch_op.create_index(batch_op.f('ix_forwarding_rule_profile_id'), ['profile_id'], unique=False)
        batch_op.create_foreign_key('fk_forwarding_rule_profile', 'profile', ['profile_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('sip_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ring', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('clir', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('presented_number', sa.String(length=16), nullable=True))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_profile_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_user_active_profile', 'profile', ['active_profile_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_active_profile', type_='foreignkey')
        batch_op.drop_column('active_profile_id')

    with op.batch_alter_table('sip_account', schema=None) as batch_op:
        batch_op.drop_column('presented_number')
        batch_op.drop_column('clir')
        batch_op.drop_column('ring')

    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.drop_constraint('fk_forwarding_rule_profile', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_forwarding_rule_profile_id'))
        batch_op.drop_column('source')
        batch_op.drop_column('profile_id')

    with op.batch_alter_table('profile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profile_user_id'))
        batch_op.drop_index(batch_op.f('ix_profile_tenant_id'))

    op.drop_table('profile')
