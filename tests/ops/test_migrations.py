"""The schema comes from the migrations, the migrations agree with the models, and a
migration that rewrites data does it both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from flask_migrate import Migrate
from sqlalchemy import create_engine, text

from webhooks_api.config import DEVELOPMENT_ENCRYPTION_KEY, load_settings
from webhooks_dev.embedded import drop_database, ensure_database


def test_models_and_migrations_agree(app, test_env):
    """`flask db check` on the migrated test database finds no difference."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webhooks_api", "db", "check"],
        env={**os.environ, **test_env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_single_head(app):
    migrate: Migrate = app.extensions["migrate"].migrate
    with app.app_context():
        script = ScriptDirectory.from_config(migrate.get_config())
        assert len(script.get_heads()) == 1


def _flask_db(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webhooks_api", "db", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def _private_database(test_env: dict[str, str]) -> Iterator[str]:
    """A database of this test's own, so migrating down and up leaves the session's alone."""
    name = test_env["DATABASE_URL"].rsplit("/", 1)[1].split("?")[0] + "_migrations"
    url = ensure_database(test_env["DATABASE_URL"], name, fresh=True)
    try:
        yield url
    finally:
        drop_database(url, name)


# An attempt stored before 0006: our headers, and a custom one in clear.
_STORED_REQUEST = {"Content-Type": "application/json", "User-Agent": "webhooks-service/1",
                   "X-Webhook-Delivery-Id": "dlv_1", "X-Webhook-Signature": "[redacted]",
                   "webhook-id": "evt_1", "webhook-signature": "[redacted]",
                   "Authorization": "Bearer old-token"}


def test_0006_encrypts_header_values_and_its_downgrade_decrypts_them(test_env):
    headers = {"Authorization": "Bearer old-token", "X-Team": "billing"}
    with _private_database(test_env) as url:
        env = {**test_env, "DATABASE_URL": url}
        _flask_db(env, "upgrade", "0005_drop_slow_since")
        engine = create_engine(load_settings(env).sqlalchemy_url)
        try:
            with engine.begin() as connection:
                connection.execute(text("""
                    INSERT INTO tenants (id) VALUES ('t1');
                    INSERT INTO subscriptions (id, tenant_id, url, event_types, headers,
                                               secret_ciphertext)
                    VALUES ('sub_1', 't1', 'https://example.com', '{*}', CAST(:headers AS jsonb),
                            'x'),
                           ('sub_2', 't1', 'https://example.com', '{*}', '{}', 'x');
                    INSERT INTO events (id, event_id, tenant_id, event_type, body, occurred_at)
                    VALUES (1, 'evt_1', 't1', 'invoice.created', '{}', now());
                    INSERT INTO deliveries (id, event_pk, subscription_id, tenant_id, event_type)
                    VALUES ('dlv_1', 1, 'sub_1', 't1', 'invoice.created');
                    INSERT INTO delivery_attempts (delivery_id, attempt_number, trigger,
                                                   started_at, duration_ms, request_headers)
                    VALUES ('dlv_1', 1, 'automatic', now(), 5, CAST(:request AS jsonb));
                """), {"headers": json.dumps(headers), "request": json.dumps(_STORED_REQUEST)})

            _flask_db(env, "upgrade")
            with engine.connect() as connection:
                ciphertexts = dict(connection.execute(text(
                    "SELECT id, header_ciphertexts FROM subscriptions ORDER BY id")).all())
                [stored_request] = connection.execute(text(
                    "SELECT request_headers FROM delivery_attempts")).scalars()
            fernet = Fernet(DEVELOPMENT_ENCRYPTION_KEY.encode())
            assert ciphertexts["sub_2"] == {}
            assert "old-token" not in json.dumps(ciphertexts)
            assert {name: fernet.decrypt(value.encode()).decode()
                    for name, value in ciphertexts["sub_1"].items()} == headers
            assert stored_request == {**_STORED_REQUEST, "Authorization": "[redacted]"}

            _flask_db(env, "downgrade", "0005_drop_slow_since")
            with engine.connect() as connection:
                restored = dict(connection.execute(text(
                    "SELECT id, headers FROM subscriptions ORDER BY id")).all())
            assert restored == {"sub_1": headers, "sub_2": {}}
        finally:
            engine.dispose()
