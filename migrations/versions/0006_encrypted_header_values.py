"""custom header values encrypted at rest, and redacted in the stored attempts

subscriptions.headers (name -> value, in clear) becomes header_ciphertexts (name -> Fernet
ciphertext of the value under the first WEBHOOKS_ENCRYPTION_KEY, like the signing secret).
In every stored attempt the custom headers (every name that is not one of ours) keep their
names and their values become "[redacted]", as the signatures already are.

Downgrade decrypts the values back into `headers`; the attempts' redacted values stay
redacted, since they are kept nowhere. Both directions need the WEBHOOKS_ENCRYPTION_KEY
of the deployment (the downgrade: a key that decrypts every value).

Revision ID: 0006_encrypted_header_values
Revises: 0005_drop_slow_since
Create Date: 2026-12-08 10:00:00

"""
from alembic import op
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


# revision identifiers, used by Alembic.
revision = '0006_encrypted_header_values'
down_revision = '0005_drop_slow_since'
branch_labels = None
depends_on = None

MASK = '[redacted]'
# The headers the worker sets itself (DESIGN.md); a custom header may not use these names.
OURS = ("lower(key) IN ('content-type', 'user-agent') "
        "OR lower(key) LIKE 'x-webhook-%' OR lower(key) LIKE 'webhook-%'")


def _fernet() -> MultiFernet:
    keys = current_app.config['WEBHOOKS_SETTINGS'].encryption_keys
    return MultiFernet([Fernet(key.encode('ascii')) for key in keys])


def _rewrite_values(column: str, transform) -> None:
    """Apply `transform` to every value of `column` (a JSON object) of every subscription
    that has custom headers."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        f"SELECT id, {column} AS headers FROM subscriptions WHERE {column} <> '{{}}'::jsonb"
    )).all()
    update = sa.text(f"UPDATE subscriptions SET {column} = :headers WHERE id = :id"
                     ).bindparams(sa.bindparam('headers', type_=JSONB))
    for row in rows:
        bind.execute(update, {'id': row.id, 'headers': {
            name: transform(value) for name, value in row.headers.items()}})


def upgrade():
    op.alter_column('subscriptions', 'headers', new_column_name='header_ciphertexts')
    fernet = _fernet()
    _rewrite_values('header_ciphertexts',
                    lambda value: fernet.encrypt(value.encode('utf-8')).decode('ascii'))
    op.execute(sa.text(f"""
        UPDATE delivery_attempts
        SET request_headers = (
            SELECT jsonb_object_agg(key, CASE WHEN {OURS} THEN value
                                              ELSE to_jsonb(CAST(:mask AS text)) END)
            FROM jsonb_each(request_headers))
        WHERE EXISTS (SELECT 1 FROM jsonb_each(request_headers)
                      WHERE NOT ({OURS}) AND value <> to_jsonb(CAST(:mask AS text)))
    """).bindparams(mask=MASK))


def downgrade():
    fernet = _fernet()
    _rewrite_values('header_ciphertexts',
                    lambda value: fernet.decrypt(value.encode('ascii')).decode('utf-8'))
    op.alter_column('subscriptions', 'header_ciphertexts', new_column_name='headers')
