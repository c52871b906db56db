"""numbers, sites, trunks, dial plans

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:26:30.669241
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trunk',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('transport', sa.String(length=3), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('region', sa.String(length=2), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('tenant_ids', sa.JSON(), nullable=False),
    sa.Column('prefixes', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('dialplan_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('pattern', sa.String(length=200), nullable=False),
    sa.Column('replacement', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dialplan_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dialplan_rule_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=2), nullable=False),
    sa.Column('area_code', sa.String(length=8), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('postal_code', sa.String(length=16), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_site_tenant_name')
    )
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('number_block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('first', sa.String(length=16), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('ported', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('first')
    )
    with op.batch_alter_table('number_block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_number_block_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('phone_number',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('block_id', sa.Integer(), nullable=False),
    sa.Column('e164', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('emergency_address', sa.String(length=300), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['block_id'], ['number_block.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('e164')
    )
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_number_block_id'), ['block_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_number_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_number_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_directory', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('allow_clip_no_screening', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('outbound', sa.String(length=16), server_default='mobile', nullable=False))
        batch_op.add_column(sa.Column('clir', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locked', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('presented_number', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_site_id'), ['site_id'], unique=False)
        batch_op.create_foreign_key('fk_user_site_id', 'site', ['site_id'], ['id'], ondelete='RESTRICT')



def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_site_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_user_site_id'))
        batch_op.drop_column('presented_number')
        batch_op.drop_column('locked')
        batch_op.drop_column('clir')
        batch_op.drop_column('outbound')
        batch_op.drop_column('site_id')

    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('allow_clip_no_screening')
        batch_op.drop_column('allow_directory')

    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phone_number_user_id'))
        batch_op.drop_index(batch_op.f('ix_phone_number_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_phone_number_block_id'))

    op.drop_table('phone_number')
    with op.batch_alter_table('number_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_number_block_tenant_id'))

    op.drop_table('number_block')
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_tenant_id'))

    op.drop_table('site')
    with op.batch_alter_table('dialplan_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dialplan_rule_tenant_id'))

    op.drop_table('dialplan_rule')
    op.drop_table('trunk')
