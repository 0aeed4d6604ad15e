"""bulk_retries: re-sending many deliveries as a job; the job id on deliveries and attempts

Revision ID: 0010_bulk_retries
Revises: 0009_portal_sessions
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0010_bulk_retries'
down_revision = '0009_portal_sessions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'bulk_retries',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('tenant_id', sa.String(length=128), nullable=False),
        sa.Column('idempotency_key', sa.String(length=128), nullable=True),
        sa.Column('delivery_status', sa.String(length=16), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event_type', sa.String(length=255), nullable=True),
        sa.Column('subscription_id', sa.String(length=32), nullable=True),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('per_second', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='running', nullable=False),
        sa.Column('matched', sa.Integer(), nullable=False),
        sa.Column('queued', sa.Integer(), server_default='0', nullable=False),
        sa.Column('skipped', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                  nullable=False),
        sa.Column('done_count', sa.Integer(), nullable=True),
        sa.Column('cursor_created_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cursor_id', sa.String(length=32), nullable=True),
        sa.Column('scanned_all', sa.Boolean(), server_default=sa.text('false'),
                  nullable=False),
        sa.Column('step', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'cancelled')",
                           name='ck_bulk_retries_status'),
        sa.CheckConstraint("delivery_status IN ('failed', 'disabled')",
                           name='ck_bulk_retries_delivery_status'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'idempotency_key', name='uq_bulk_retries_tenant_key'),
    )
    op.create_index('ix_bulk_retries_unfinished', 'bulk_retries', ['updated_at'],
                    unique=False, postgresql_where=sa.text('finished_at IS NULL'))
    op.create_table(
        'bulk_retry_budgets',
        sa.Column('tenant_id', sa.String(length=128), nullable=False),
        sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('queued', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tenant_id'),
    )
    # Nullable columns without a default: no table rewrite.
    op.add_column('deliveries', sa.Column('bulk_retry_id', sa.String(length=32),
                                          nullable=True))
    op.create_index('ix_deliveries_bulk_retry_pending', 'deliveries', ['bulk_retry_id'],
                    unique=False, postgresql_where=sa.text('manual_pending'))
    op.add_column('delivery_attempts', sa.Column('bulk_retry_id', sa.String(length=32),
                                                 nullable=True))
    op.create_index('ix_attempts_bulk_retry', 'delivery_attempts', ['bulk_retry_id'],
                    unique=False, postgresql_where=sa.text('bulk_retry_id IS NOT NULL'))


def downgrade():
    op.drop_index('ix_attempts_bulk_retry', table_name='delivery_attempts')
    op.drop_column('delivery_attempts', 'bulk_retry_id')
    op.drop_index('ix_deliveries_bulk_retry_pending', table_name='deliveries')
    op.drop_column('deliveries', 'bulk_retry_id')
    op.drop_table('bulk_retry_budgets')
    op.drop_index('ix_bulk_retries_unfinished', table_name='bulk_retries')
    op.drop_table('bulk_retries')
