"""Voicemail: mailboxes (a user's or a hunt group's), their messages, forwarding and group overflow to a mailbox

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 22:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mailbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=100), server_default='', nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('pin_hash', sa.String(length=200), server_default='', nullable=False),
        sa.Column('email', sa.String(length=254), server_default='', nullable=False),
        sa.Column('attach_audio', sa.Boolean(), nullable=False),
        sa.Column('min_message_s', sa.Float(), nullable=False),
        sa.Column('max_message_s', sa.Integer(), nullable=False),
        sa.Column('retention_days', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['group_id'], ['hunt_group.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id'),
        sa.UniqueConstraint('group_id'),
    )
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailbox_tenant_id'), ['tenant_id'], unique=False)
    op.create_table(
        'voicemail_message',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('caller', sa.String(length=128), nullable=False),
        sa.Column('call_id', sa.String(length=255), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('duration_s', sa.Float(), nullable=False),
        sa.Column('size_bytes', sa.Integer(), nullable=False),
        sa.Column('heard', sa.Boolean(), nullable=False),
        sa.Column('heard_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('emailed', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('voicemail_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_voicemail_message_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_voicemail_message_mailbox_id'), ['mailbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_voicemail_message_received_at'), ['received_at'], unique=False)
    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_mailbox_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_forwarding_rule_mailbox', 'mailbox', ['target_mailbox_id'], ['id'], ondelete='CASCADE'
        )
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overflow_mailbox_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_hunt_group_overflow_mailbox', 'mailbox', ['overflow_mailbox_id'], ['id'], ondelete='SET NULL'
        )


def downgrade() -> None:
    with op.batch_alter_table('hunt_group', schema=None) as batch_op:
        batch_op.drop_constraint('fk_hunt_group_overflow_mailbox', type_='foreignkey')
        batch_op.drop_column('overflow_mailbox_id')
    with op.batch_alter_table('forwarding_rule', schema=None) as batch_op:
        batch_op.drop_constraint('fk_forwarding_rule_mailbox', type_='foreignkey')
        batch_op.drop_column('target_mailbox_id')
    op.drop_table('voicemail_message')
    op.drop_table('mailbox')
