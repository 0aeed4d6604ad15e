"""drop subscriptions.slow_since: the worker runs on a stock pool, without slow lanes

Revision ID: 0005_drop_slow_since
Revises: 0004_slow_since
Create Date: 2026-12-01 21:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_drop_slow_since'
down_revision = '0004_slow_since'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('slow_since')


def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slow_since', sa.DateTime(timezone=True), nullable=True))
