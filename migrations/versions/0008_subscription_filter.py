"""subscriptions.filter: a payload filter and the jsonpath predicate the fan-out evaluates

Revision ID: 0008_subscription_filter
Revises: 0007_maintenance_runs
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0008_subscription_filter'
down_revision = '0007_maintenance_runs'
branch_labels = None
depends_on = None


def upgrade():
    # Both nullable, no default: existing subscriptions keep receiving every event of their
    # types. Adding them rewrites nothing.
    op.add_column('subscriptions', sa.Column(
        'filter', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('subscriptions', sa.Column('filter_jsonpath', postgresql.JSONPATH(),
                                             nullable=True))
    op.create_check_constraint('ck_subscriptions_filter_compiled', 'subscriptions',
                               '(filter IS NULL) = (filter_jsonpath IS NULL)')


def downgrade():
    op.drop_constraint('ck_subscriptions_filter_compiled', 'subscriptions', type_='check')
    op.drop_column('subscriptions', 'filter_jsonpath')
    op.drop_column('subscriptions', 'filter')
