"""maintenance_runs: when the last sweep finished, for /readyz and /metrics

Revision ID: 0007_maintenance_runs
Revises: 0006_encrypted_header_values
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_maintenance_runs'
down_revision = '0006_encrypted_header_values'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'maintenance_runs',
        sa.Column('task', sa.String(length=64), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('task'),
    )


def downgrade():
    op.drop_table('maintenance_runs')
