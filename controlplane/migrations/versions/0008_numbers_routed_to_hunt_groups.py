"""numbers routed to hunt groups

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 01:59:50.377361
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_phone_number_group', 'hunt_group', ['group_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('phone_number', schema=None) as batch_op:
        batch_op.drop_constraint('fk_phone_number_group', type_='foreignkey')
        batch_op.drop_column('group_id')

