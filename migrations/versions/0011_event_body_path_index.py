"""ix_events_body_path: a GIN index (jsonb_path_ops) on the event body, for the delivery
search's payload filters

Built CONCURRENTLY, outside the migration's transaction (alembic's autocommit_block): a
plain CREATE INDEX holds a lock that blocks every INSERT into events, i.e. every publish,
for as long as the build takes on a large table. The block commits what ran before it in
the same `db upgrade`. A build that was interrupted leaves an invalid index behind, which
the DROP ... IF EXISTS first removes, so running the upgrade again completes it
(docs/operations.md, "Upgrading").

Revision ID: 0011_event_body_path_index
Revises: 0010_bulk_retries
Create Date: 2026-12-02 18:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_event_body_path_index'
down_revision = '0010_bulk_retries'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_events_body_path')
        op.execute('CREATE INDEX CONCURRENTLY ix_events_body_path ON events '
                   'USING gin ((CAST(body AS jsonb)) jsonb_path_ops)')


def downgrade():
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_events_body_path')
