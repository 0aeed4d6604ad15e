"""Operator commands: `publish` an event from the shell, `stats` of deliveries and queues,
`replay` and `recover` a subscription's undelivered deliveries (docs/HEALTH.md).

Errors go to stderr with a non-zero exit, like the other commands.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from webhooks_api.config import Settings
from webhooks_api.domain.models import Subscription
from webhooks_api.errors import DomainError
from webhooks_api.extensions import db
from webhooks_api.services import recovery
from webhooks_api.services.publishing import publish_event
from webhooks_api.services.stats import broker_state, database_state


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
        _fail(error)
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


def _fail(error: DomainError) -> None:
    details = "; ".join(f"{field}: {', '.join(messages)}"
                        for field, messages in (error.errors or {}).items())
    click.echo(f"error: {error.message}" + (f" ({details})" if details else ""), err=True)
    raise SystemExit(1) from None


def _utc(value: datetime | None) -> datetime | None:
    """click's DateTime has no offset: the operator's times are UTC, like the API's."""
    return None if value is None else value.replace(tzinfo=UTC)


def _resend(action, subscription_id: str, **window) -> None:
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None:
        click.echo(f"error: subscription {subscription_id} not found", err=True)
        raise SystemExit(1)
    try:
        resent = action(db.session, subscription.tenant_id, subscription_id, **window)
    except DomainError as error:
        _fail(error)
    click.echo(f"{resent.count} deliveries queued", err=True)
    for delivery_id in resent.delivery_ids:
        click.echo(delivery_id)


_TIME = click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"])


@click.command("replay")
@click.argument("subscription_id")
@click.option("--since", type=_TIME, default=None,
              help="UTC; default: when the subscription was last disabled or paused.")
@with_appcontext
def replay_command(subscription_id: str, since: datetime | None) -> None:
    """Re-send every delivery of SUBSCRIPTION_ID never delivered since --since, oldest
    first; prints the delivery ids queued."""
    _resend(recovery.replay, subscription_id, since=_utc(since))


@click.command("recover")
@click.argument("subscription_id")
@click.option("--since", type=_TIME, required=True, help="UTC.")
@click.option("--until", type=_TIME, default=None, help="UTC; default: now.")
@with_appcontext
def recover_command(subscription_id: str, since: datetime, until: datetime | None) -> None:
    """Re-send every failed delivery of SUBSCRIPTION_ID created in the window (its last 14
    days at most); prints the delivery ids queued."""
    _resend(recovery.recover, subscription_id, since=_utc(since), until=_utc(until))


def register(app) -> None:
    for command in (publish_command, stats_command, replay_command, recover_command):
        app.cli.add_command(command)
