"""Central voicemail (VM-08): a user's mobile number, and a public number that is the tenant's voicemail;
personal IVR (IVR-06): a menu owned by a user, and forwarding to a menu

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 05:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user') as batch:
        batch.add_column(sa.Column('mobile', sa.String(16), nullable=True))
    with op.batch_alter_table('phone_number') as batch:
        batch.add_column(sa.Column('voicemail', sa.Boolean(), nullable=False, server_default='0'))
    with op.batch_alter_table('ivr_menu') as batch:
        batch.add_column(sa.Column('owner_user_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_ivr_menu_owner', 'user', ['owner_user_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('forwarding_rule') as batch:
        batch.add_column(sa.Column('target_ivr_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_forwarding_rule_ivr', 'ivr_menu', ['target_ivr_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('forwarding_rule') as batch:
        batch.drop_constraint('fk_forwarding_rule_ivr', type_='foreignkey')
        batch.drop_column('target_ivr_id')
    with op.batch_alter_table('ivr_menu') as batch:
        batch.drop_constraint('fk_ivr_menu_owner', type_='foreignkey')
        batch.drop_column('owner_user_id')
    with op.batch_alter_table('phone_number') as batch:
        batch.drop_column('voicemail')
    with op.batch_alter_table('user') as batch:
        batch.drop_column('mobile')
