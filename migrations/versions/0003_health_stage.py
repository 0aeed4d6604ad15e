"""health: the warning stage of a subscription's failure streak

Revision ID: 0003_health_stage
Revises: 0002_ops_retention_indexes
Create Date: 2026-11-29 13:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_health_stage'
down_revision = '0002_ops_retention_indexes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('health_stage', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('last_disabled_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('last_disabled_at')
        batch_op.drop_column('health_stage')
