"""Timestamps with time zone everywhere: migrations 0010 and 0017 created seven columns as plain DateTime while the
models store aware UTC datetimes (sqlmodel's UTCDateTime). On SQLite the two are the same; on PostgreSQL (the cluster
database) they were `timestamp without time zone`, where an aware value is shifted by the session's time zone. The
stored values were written as UTC: read them as such.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 17:50:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

COLUMNS = (
    ('api_token', 'expires_at', True),
    ('fraud_event', 'time', False),
    ('fraud_event', 'acknowledged_at', True),
    ('fraud_event', 'ingested_at', False),
    ('fraud_lock', 'created_at', False),
    ('fraud_lock', 'lifted_at', True),
    ('fraud_policy', 'updated_at', False),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite stores both alike
    for table, column, nullable in COLUMNS:
        op.alter_column(table, column, type_=sa.DateTime(timezone=True), existing_type=sa.DateTime(),
                        existing_nullable=nullable, postgresql_using=f"\"{column}\" AT TIME ZONE 'UTC'")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(table, column, type_=sa.DateTime(), existing_type=sa.DateTime(timezone=True),
                        existing_nullable=nullable, postgresql_using=f"\"{column}\" AT TIME ZONE 'UTC'")
