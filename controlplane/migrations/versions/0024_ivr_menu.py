"""IVR menus (IVR-01..05): menus with their actions by key, reached by extension, public number or another menu

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 03:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ivr_menu',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('extension', sa.String(length=16), server_default='', nullable=False),
        sa.Column('timeout_s', sa.Integer(), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('actions', sa.JSON(), nullable=False),
        sa.Column('time_plan_id', sa.Integer(), nullable=True),
        sa.Column('when', sa.String(length=3), server_default='out', nullable=False),
        sa.Column('other_menu_id', sa.Integer(), nullable=True),
        sa.Column('language', sa.String(length=2), server_default='', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['time_plan_id'], ['time_plan.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['other_menu_id'], ['ivr_menu.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_ivr_menu_tenant_name'),
    )
    with op.batch_alter_table('ivr_menu', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ivr_menu_tenant_id'), ['tenant_id'], unique=False)
    with op.batch_alter_table('phone_number') as batch:
        batch.add_column(sa.Column('ivr_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_phone_number_ivr', 'ivr_menu', ['ivr_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('phone_number') as batch:
        batch.drop_constraint('fk_phone_number_ivr', type_='foreignkey')
        batch.drop_column('ivr_id')
    with op.batch_alter_table('ivr_menu', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ivr_menu_tenant_id'))
    op.drop_table('ivr_menu')
