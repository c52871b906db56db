"""Trunk passwords are stored encrypted (controlplane/sealed.py): room for the sealed form

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trunk') as batch:
        batch.alter_column('auth_password', type_=sa.String(length=600), existing_type=sa.String(length=200), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('trunk') as batch:
        batch.alter_column('auth_password', type_=sa.String(length=200), existing_type=sa.String(length=600), existing_nullable=True)
