"""portal_sessions and portal_settings: the embeddable portal's scoped tokens and a
tenant's embedding and branding

Revision ID: 0009_portal_sessions
Revises: 0008_subscription_filter
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0009_portal_sessions'
down_revision = '0008_subscription_filter'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'portal_sessions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('tenant_id', sa.String(length=128), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('subscription_ids', postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column('read_only', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_tenant_id'), ['tenant_id'],
                              unique=False)
    op.create_table(
        'portal_settings',
        sa.Column('tenant_id', sa.String(length=128), nullable=False),
        sa.Column('allowed_origins', postgresql.ARRAY(sa.Text()), server_default='{}',
                  nullable=False),
        sa.Column('title', sa.String(length=100), nullable=True),
        sa.Column('accent_color', sa.String(length=7), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tenant_id'),
    )


def downgrade():
    op.drop_table('portal_settings')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_tenant_id'))
    op.drop_table('portal_sessions')
