"""Emergency calls: a site's house number and emergency trunk, the emergency mark on CDRs

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 08:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('site') as batch:
        batch.add_column(sa.Column('house_number', sa.String(length=16), nullable=False, server_default=''))
        batch.add_column(sa.Column('emergency_trunk_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_site_emergency_trunk', 'trunk', ['emergency_trunk_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('cdr') as batch:
        batch.add_column(sa.Column('emergency', sa.Boolean(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('cdr') as batch:
        batch.drop_column('emergency')
    with op.batch_alter_table('site') as batch:
        batch.drop_constraint('fk_site_emergency_trunk', type_='foreignkey')
        batch.drop_column('emergency_trunk_id')
        batch.drop_column('house_number')
