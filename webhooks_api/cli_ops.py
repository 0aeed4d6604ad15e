"""Operator commands: `publish` an event from the shell, `stats` of deliveries and queues.

Errors go to stderr with a non-zero exit, like the other commands.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from flask import current_app
from flask.cli import with_appcontext

from .config import Settings
from .errors import DomainError
from .extensions import db
from .services.publishing import publish_event
from .stats import broker_state, database_state


def current_settings() -> Settings:
    return current_app.config["WEBHOOKS_SETTINGS"]


def _json_object(value: str | None, name: str) -> dict | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint=name) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return parsed


@click.command("publish")
@click.argument("tenant_id")
@click.argument("event_type")
@click.argument("data", default="{}")
@click.option("--metadata", default=None, help="A JSON object sent alongside the data.")
@click.option("--event-id", default=None, help="Idempotency key: a repeat publishes nothing.")
@with_appcontext
def publish_command(tenant_id: str, event_type: str, data: str, metadata: str | None,
                    event_id: str | None) -> None:
    """Publish EVENT_TYPE with DATA (a JSON object) for TENANT_ID; prints the event id."""
    try:
        stored = publish_event(db.session, current_settings(), tenant_id, event_type,
                               _json_object(data, "DATA"), _json_object(metadata, "--metadata"),
                               event_id)
    except DomainError as error:
        details = "; ".join(f"{field}: {', '.join(messages)}"
                            for field, messages in (error.errors or {}).items())
        click.echo(f"error: {error.message}" + (f" ({details})" if details else ""), err=True)
        raise SystemExit(1) from None
    if not stored.created:
        click.echo(f"event {stored.event.event_id} was already published; nothing new sent",
                   err=True)
    click.echo(stored.event.event_id)


@click.command("stats")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's deliveries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@with_appcontext
def stats_command(tenant_id: str | None, as_json: bool) -> None:
    """Deliveries by status, delivery lag, subscriptions, and the broker's queues."""
    database = database_state(db.session, tenant_id, open_only=False)
    try:
        broker: dict = asdict(broker_state(current_settings()))
    except Exception as error:  # the numbers PostgreSQL has are still worth showing
        broker = {"error": f"{type(error).__name__}: {error}"}
    if as_json:
        click.echo(json.dumps({"database": asdict(database), "broker": broker}))
        return

    def counts(values: dict) -> str:
        return " ".join(f"{key}={value}" for key, value in sorted(values.items())) or "none"

    click.echo(f"deliveries     {counts(database.deliveries_by_status)}")
    click.echo(f"delivery lag   oldest due {database.oldest_due_seconds:.0f} s late, "
               f"oldest open {database.oldest_open_seconds:.0f} s old")
    click.echo(f"subscriptions  {counts(database.subscriptions_by_status)} "
               f"(failing: {counts(database.failing_subscriptions_by_status)})")
    if "error" in broker:
        click.echo(f"broker         unreachable: {broker['error']}")
    else:
        unacked = broker["unacked_messages"]
        click.echo(f"queues         {counts(broker['messages_by_queue'])}"
                   + ("" if unacked is None else f" (held by workers: {unacked})"))


def register(app) -> None:
    app.cli.add_command(publish_command)
    app.cli.add_command(stats_command)
