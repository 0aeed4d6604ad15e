"""The operator's CLI: tenants and API keys (keys hashed, shown once, revocable)."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.api_support import API
from webhooks_api.domain.models import ApiKey, Tenant


def test_tenants_create(runner, session):
    result = runner.invoke(args=["tenants", "create", "acme", "--name", "Acme Inc."])
    assert result.exit_code == 0 and "acme" in result.stdout and result.stderr == ""
    assert session.get(Tenant, "acme").name == "Acme Inc."


def test_tenants_create_errors_go_to_stderr(runner, session):
    runner.invoke(args=["tenants", "create", "acme"])
    duplicate = runner.invoke(args=["tenants", "create", "acme"])
    assert duplicate.exit_code != 0
    assert "already exists" in duplicate.stderr and duplicate.stdout == ""
    invalid = runner.invoke(args=["tenants", "create", "not valid!"])
    assert invalid.exit_code != 0 and "tenant id" in invalid.stderr and invalid.stdout == ""


def test_api_keys_create_prints_the_key_alone_on_the_last_line(runner, client, session):
    runner.invoke(args=["tenants", "create", "acme"])
    result = runner.invoke(args=["api-keys", "create", "acme", "--name", "ci"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    api_key = lines[-1]
    assert api_key.startswith("whk_") and " " not in api_key and len(lines) >= 2
    record = session.scalar(select(ApiKey).where(ApiKey.tenant_id == "acme"))
    assert record.name == "ci" and api_key not in record.key_hash
    assert api_key not in "".join(lines[:-1]), "printed once"
    response = client.get(f"{API}/subscriptions", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200


def test_api_keys_create_for_an_unknown_tenant_fails(runner):
    result = runner.invoke(args=["api-keys", "create", "ghost"])
    assert result.exit_code != 0 and "does not exist" in result.stderr
    assert "whk_" not in result.stdout


def test_api_keys_list_shows_ids_and_prefixes_never_the_key(runner):
    runner.invoke(args=["tenants", "create", "acme"])
    keys = [runner.invoke(args=["api-keys", "create", "acme"]).stdout.splitlines()[-1]
            for _ in range(2)]
    listed = runner.invoke(args=["api-keys", "list", "acme"])
    assert listed.exit_code == 0
    rows = listed.stdout.splitlines()
    assert len(rows) == 2 and all(row.startswith("key_") and "active" in row for row in rows)
    assert not any(key in listed.stdout for key in keys)
    assert all(key[:10] in listed.stdout for key in keys)
    unknown = runner.invoke(args=["api-keys", "list", "ghost"])
    assert unknown.exit_code != 0 and "does not exist" in unknown.stderr


def test_api_keys_revoke_takes_effect_at_once(runner, client, tenant):
    headers = tenant["headers"]
    assert client.get(f"{API}/subscriptions", headers=headers).status_code == 200
    key_id = runner.invoke(args=["api-keys", "list", tenant["id"]]).stdout.split()[0]
    result = runner.invoke(args=["api-keys", "revoke", key_id])
    assert result.exit_code == 0 and key_id in result.stdout
    assert client.get(f"{API}/subscriptions", headers=headers).status_code == 401
    listed = runner.invoke(args=["api-keys", "list", tenant["id"]]).stdout
    assert "revoked" in listed
    unknown = runner.invoke(args=["api-keys", "revoke", "key_ghost"])
    assert unknown.exit_code != 0 and "does not exist" in unknown.stderr


def test_tenants_create_with_key_prints_the_key_alone_on_stdout(runner, client, session):
    result = runner.invoke(args=["tenants", "create", "acme", "--with-key"])
    assert result.exit_code == 0, result.output
    api_key = result.stdout.strip()
    assert api_key.startswith("whk_") and "\n" not in api_key, "KEY=$(...) keeps the key"
    assert "created tenant acme" in result.stderr and api_key not in result.stderr
    assert session.get(Tenant, "acme") is not None
    response = client.get(f"{API}/subscriptions", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200


def test_tenants_create_with_key_for_a_taken_id_creates_no_key(runner, session):
    runner.invoke(args=["tenants", "create", "acme"])
    result = runner.invoke(args=["tenants", "create", "acme", "--with-key"])
    assert result.exit_code != 0 and "already exists" in result.stderr
    assert "whk_" not in result.stdout
    assert session.scalars(select(ApiKey)).all() == []
