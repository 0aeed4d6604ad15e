"""slow lanes: since when a subscription's receiver answers later than the budget

Revision ID: 0004_slow_since
Revises: 0003_health_stage
Create Date: 2026-11-30 02:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_slow_since'
down_revision = '0003_health_stage'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slow_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('slow_since')
