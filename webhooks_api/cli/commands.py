"""`flask --app webhooks_api ...` commands: tenants, API keys and the encryption key.

Errors go to stderr with a non-zero exit; `api-keys create` prints the key alone on the
last line of stdout, since it is never shown again; `tenants create --with-key` prints it
alone on stdout (its notes on stderr), so `KEY=$(flask ... tenants create acme --with-key)`
keeps it.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webhooks_api.cli import listen, operations
from webhooks_api.errors import DomainError
from webhooks_api.extensions import db
from webhooks_api.services import tenants as service
from webhooks_api.services.secret_keys import reencrypt_secrets

tenants_cli = AppGroup("tenants", help="Manage tenants.")
api_keys_cli = AppGroup("api-keys", help="Manage tenants' API keys.")
secrets_cli = AppGroup("secrets", help="Manage the encryption of secrets and header values.")


def _fail(error: DomainError) -> None:
    click.echo(f"error: {error.message}", err=True)
    raise SystemExit(1)


@tenants_cli.command("create")
@click.argument("tenant_id")
@click.option("--name", default=None, help="A human-readable name.")
@click.option("--with-key", is_flag=True,
              help="Also create an API key and print it alone on stdout (once).")
def create_tenant(tenant_id: str, name: str | None, with_key: bool) -> None:
    """Create a tenant (and, with --with-key, its first API key)."""
    try:
        tenant = service.create_tenant(db.session, tenant_id, name)
        issued = service.create_api_key(db.session, tenant.id) if with_key else None
    except DomainError as error:
        _fail(error)
    click.echo(f"created tenant {tenant.id}", err=with_key)
    if issued is not None:
        _print_key(issued, tenant.id, notes_to_stderr=True)


def _print_key(issued: service.IssuedKey, tenant_id: str, notes_to_stderr: bool) -> None:
    click.echo(f"created API key {issued.record.id} for tenant {tenant_id}; store it now,"
               " it is not shown again:", err=notes_to_stderr)
    click.echo(issued.api_key)


@api_keys_cli.command("create")
@click.argument("tenant_id")
@click.option("--name", default=None, help="What the key is for.")
def create_api_key(tenant_id: str, name: str | None) -> None:
    """Create an API key; it is printed once, on the last line."""
    try:
        issued = service.create_api_key(db.session, tenant_id, name)
    except DomainError as error:
        _fail(error)
    _print_key(issued, tenant_id, notes_to_stderr=False)


@api_keys_cli.command("list")
@click.argument("tenant_id")
def list_api_keys(tenant_id: str) -> None:
    """List a tenant's API keys (ids and prefixes, never the keys)."""
    try:
        keys = service.list_api_keys(db.session, tenant_id)
    except DomainError as error:
        _fail(error)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}\t{key.key_prefix}...\t{key.name or ''}\t{state}")


@api_keys_cli.command("revoke")
@click.argument("key_id")
def revoke_api_key(key_id: str) -> None:
    """Revoke an API key at once."""
    try:
        service.revoke_api_key(db.session, key_id)
    except DomainError as error:
        _fail(error)
    click.echo(f"revoked {key_id}")


@secrets_cli.command("reencrypt")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1),
              help="Subscriptions re-encrypted per committed transaction.")
def reencrypt(batch_size: int) -> None:
    """Re-encrypt every signing secret and custom header value with the first
    WEBHOOKS_ENCRYPTION_KEY.

    Key rotation: set WEBHOOKS_ENCRYPTION_KEY=NEW,OLD everywhere, run this, then remove OLD.
    """
    try:
        rewritten = reencrypt_secrets(db.session, current_app.config["WEBHOOKS_SETTINGS"],
                                      batch_size)
    except DomainError as error:
        _fail(error)
    click.echo(f"re-encrypted the secrets and header values of {rewritten} subscriptions "
               "with the first key")


def register(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(api_keys_cli)
    operations.register(app)
    app.cli.add_command(listen.listen_command)
    app.cli.add_command(secrets_cli)
