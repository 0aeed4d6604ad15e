"""Subscriptions: the use cases of a tenant's endpoints, each one transaction.

Status (DESIGN.md): `active`; `paused` (the user set is_active false: matches nothing);
`disabled` (the service stopped it; `disabled_reason` says why). Whenever a subscription
stops receiving (paused, disabled, deleted) its open deliveries become `disabled` in the
same transaction, so no queued message sends them and they can be replayed later.
Re-activation clears the reason and the failure streak.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.catalogue import BUILTIN_EVENT_TYPES, is_filter_pattern
from webhooks_api.domain.custom_headers import encrypt_headers
from webhooks_api.domain.headers import header_errors
from webhooks_api.domain.ids import ID_PATTERN, new_id
from webhooks_api.domain.json_values import json_size
from webhooks_api.domain.models import EventType, Subscription
from webhooks_api.domain.payload_filters import filter_errors, to_jsonpath
from webhooks_api.domain.secrets import SecretBox, new_signing_secret
from webhooks_api.domain.ssrf import target_url_errors
from webhooks_api.errors import InvalidInputError, NotFoundError
from webhooks_api.services.deliveries import disable_open_deliveries, list_deliveries
from webhooks_api.services.pagination import DEFAULT_LIMIT, Page, newest_first
from webhooks_api.services.publishing import record_operational_event

SECRET_ROTATED_EVENT = "webhook.subscription.secret_rotated"


def event_type_errors(session: Session, tenant_id: str, event_types: list[str]) -> list[str]:
    if not event_types:
        return ["list at least one event type or filter"]
    custom = set(session.scalars(
        select(EventType.name).where(EventType.tenant_id == tenant_id,
                                     EventType.name.in_(event_types))
    ))
    return [
        f"unknown event type {name!r} (use a catalogue type, 'category.*' or '*')"
        for name in event_types
        if name not in BUILTIN_EVENT_TYPES and name not in custom and not is_filter_pattern(name)
    ]


def subscription_errors(session: Session, settings: Settings, tenant_id: str,
                        fields: dict) -> dict[str, list[str]]:
    """The rules beyond the request schema, for the fields present (create and PATCH)."""
    errors: dict[str, list[str]] = {}
    if "url" in fields and (url_errors := target_url_errors(fields["url"], settings)):
        errors["url"] = url_errors
    if "event_types" in fields and (
        type_errors := event_type_errors(session, tenant_id, fields["event_types"])
    ):
        errors["event_types"] = type_errors
    if bad_headers := header_errors(fields.get("headers") or {}):
        errors["headers"] = bad_headers
    if json_size(fields.get("metadata") or {}) > settings.metadata_max_bytes:
        errors["metadata"] = [f"must be at most {settings.metadata_max_bytes} bytes as JSON"]
    if fields.get("filter") is not None:  # null: no filter
        errors.update(filter_errors(fields["filter"]))
    return errors


def _set_filter(subscription: Subscription, payload_filter: dict | None) -> None:
    """The filter and the predicate the fan-out evaluates, always changed together."""
    subscription.payload_filter = payload_filter
    subscription.filter_jsonpath = None if payload_filter is None else to_jsonpath(
        payload_filter)


@dataclass(frozen=True)
class SubscriptionWithSecret:
    """A subscription and its new plain secret, returned once (create and rotate)."""

    subscription: Subscription
    secret: str

    def __getattr__(self, name: str):
        return getattr(self.subscription, name)


def create_subscription(session: Session, settings: Settings, tenant_id: str, *, url: str,
                        event_types: list[str], description: str | None = None,
                        timeout_seconds: int = 30, headers: dict | None = None,
                        metadata: dict | None = None, is_active: bool = True,
                        max_per_second: int | None = None, filter: dict | None = None
                        ) -> SubscriptionWithSecret:
    errors = subscription_errors(session, settings, tenant_id, {
        "url": url, "event_types": event_types, "headers": headers, "metadata": metadata,
        "filter": filter})
    if errors:
        raise InvalidInputError("the subscription is not valid", errors)
    secret = new_signing_secret()
    box = SecretBox(settings.encryption_keys)
    subscription = Subscription(
        id=new_id("sub"),
        tenant_id=tenant_id,
        url=url,
        event_types=list(dict.fromkeys(event_types)),
        description=description,
        timeout_seconds=timeout_seconds,
        header_ciphertexts=encrypt_headers(box, headers or {}),
        extra_metadata=metadata or {},
        status="active" if is_active else "paused",
        max_per_second=max_per_second,
        secret_ciphertext=box.encrypt(secret),
    )
    _set_filter(subscription, filter)
    session.add(subscription)
    session.commit()
    return SubscriptionWithSecret(subscription=subscription, secret=secret)


def get_subscription(session: Session, tenant_id: str, subscription_id: str,
                     for_update: bool = False) -> Subscription:
    """The tenant's live subscription; another tenant's or a deleted one is not found."""
    subscription = None
    if ID_PATTERN.match(subscription_id):
        statement = select(Subscription).where(
            Subscription.id == subscription_id, Subscription.tenant_id == tenant_id,
            Subscription.deleted_at.is_(None))
        if for_update:
            statement = statement.with_for_update()
        subscription = session.scalar(statement)
    if subscription is None:
        raise NotFoundError(f"subscription {subscription_id} not found")
    return subscription


def list_subscriptions(session: Session, tenant_id: str, *, limit: int = DEFAULT_LIMIT,
                       cursor: str | None = None, status: str | None = None,
                       is_active: bool | None = None) -> Page:
    statement = select(Subscription).where(Subscription.tenant_id == tenant_id,
                                           Subscription.deleted_at.is_(None))
    if status is not None:
        statement = statement.where(Subscription.status == status)
    if is_active is not None:
        statement = statement.where((Subscription.status == "active") == is_active)
    return newest_first(session, statement, Subscription, limit, cursor)


def list_subscription_deliveries(session: Session, tenant_id: str, subscription_id: str,
                                 **filters) -> Page:
    """One live subscription's deliveries (filters as `list_deliveries`); a deleted one's
    history is read through the tenant's delivery list instead."""
    subscription = get_subscription(session, tenant_id, subscription_id)
    return list_deliveries(session, tenant_id, subscription_id=subscription.id, **filters)


def _set_active(session: Session, subscription: Subscription, is_active: bool) -> None:
    if is_active and subscription.status != "active":
        subscription.status = "active"
        subscription.disabled_reason = None
        subscription.disabled_at = None
        subscription.consecutive_failures = 0
        subscription.failing_since = None
        subscription.health_stage = None
    elif not is_active and subscription.status == "active":
        # A disabled subscription stays disabled (with its reason): it is inactive already.
        subscription.status = "paused"
        subscription.last_disabled_at = func.now()
        disable_open_deliveries(session, subscription.id)


def update_subscription(session: Session, settings: Settings, tenant_id: str,
                        subscription_id: str, changes: dict) -> Subscription:
    """Apply a PATCH: validated like a create, written in one transaction."""
    subscription = get_subscription(session, tenant_id, subscription_id, for_update=True)
    if errors := subscription_errors(session, settings, tenant_id, changes):
        session.rollback()  # releases the row lock now, not at the end of the request
        raise InvalidInputError("the subscription is not valid", errors)
    renamed = {"metadata": "extra_metadata"}
    for field, value in changes.items():
        if field == "is_active":
            _set_active(session, subscription, value)
        elif field == "event_types":
            subscription.event_types = list(dict.fromkeys(value))
        elif field == "filter":
            _set_filter(subscription, value)
        elif field == "headers":  # replaced whole: a response never shows the old values
            subscription.header_ciphertexts = encrypt_headers(
                SecretBox(settings.encryption_keys), value)
        else:
            setattr(subscription, renamed.get(field, field), value)
    session.commit()
    return subscription


def delete_subscription(session: Session, tenant_id: str, subscription_id: str) -> None:
    """Soft delete: it stops matching at once, its history stays readable."""
    subscription = get_subscription(session, tenant_id, subscription_id, for_update=True)
    subscription.deleted_at = func.now()
    disable_open_deliveries(session, subscription.id)
    session.commit()


def rotate_secret(session: Session, settings: Settings, tenant_id: str, subscription_id: str,
                  grace_period_seconds: int) -> SubscriptionWithSecret:
    """A new secret; the current one keeps signing too until the grace period ends.
    Announced to the tenant's other subscriptions that ask for it (never a secret)."""
    subscription = get_subscription(session, tenant_id, subscription_id, for_update=True)
    secret = new_signing_secret()
    # The database's clock, in whole seconds: the expiry the event gives is the stored one.
    rotated_at = session.scalar(select(func.date_trunc("second", func.now())))
    expires_at = None
    if grace_period_seconds > 0:
        subscription.previous_secret_ciphertext = subscription.secret_ciphertext
        expires_at = rotated_at + timedelta(seconds=grace_period_seconds)
    else:
        subscription.previous_secret_ciphertext = None
    subscription.previous_secret_expires_at = expires_at
    subscription.secret_ciphertext = SecretBox(settings.encryption_keys).encrypt(secret)
    record_operational_event(session, settings, tenant_id, SECRET_ROTATED_EVENT,
                             subscription.id, {"rotated_at": rotated_at,
                                               "previous_secret_expires_at": expires_at})
    session.commit()
    return SubscriptionWithSecret(subscription=subscription, secret=secret)
