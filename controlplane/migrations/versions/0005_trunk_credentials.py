"""trunk credentials

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:58:45.488593
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trunk', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_username', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('auth_password', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('auth_realm', sa.String(length=253), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('trunk', schema=None) as batch_op:
        batch_op.drop_column('auth_realm')
        batch_op.drop_column('auth_password')
        batch_op.drop_column('auth_username')

