"""Subscriptions: creation with validation, reads scoped to one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalogue import BUILTIN_EVENT_TYPES, is_filter_pattern
from ..config import Settings
from ..errors import InvalidInputError, NotFoundError
from ..header_rules import header_limit_errors
from ..ids import new_id
from ..models import EventType, Subscription
from ..secrets import SecretBox, new_signing_secret
from ..targets import target_url_errors

RESERVED_HEADER_NAMES = frozenset({"content-type", "content-length", "host", "user-agent"})
RESERVED_HEADER_PREFIXES = ("x-webhook-", "webhook-")


def header_errors(headers: dict[str, str]) -> list[str]:
    return [
        f"header {name!r} is set by the service and cannot be overridden"
        for name in headers
        if name.lower() in RESERVED_HEADER_NAMES
        or name.lower().startswith(RESERVED_HEADER_PREFIXES)
    ] + header_limit_errors(headers)


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
                        metadata: dict | None = None, is_active: bool = True
                        ) -> SubscriptionWithSecret:
    errors: dict[str, list[str]] = {}
    if url_errors := target_url_errors(url, settings):
        errors["url"] = url_errors
    if type_errors := event_type_errors(session, tenant_id, event_types):
        errors["event_types"] = type_errors
    if bad_headers := header_errors(headers or {}):
        errors["headers"] = bad_headers
    if errors:
        raise InvalidInputError("the subscription is not valid", errors)
    secret = new_signing_secret()
    subscription = Subscription(
        id=new_id("sub"),
        tenant_id=tenant_id,
        url=url,
        event_types=list(dict.fromkeys(event_types)),
        description=description,
        timeout_seconds=timeout_seconds,
        headers=headers or {},
        extra_metadata=metadata or {},
        status="active" if is_active else "paused",
        secret_ciphertext=SecretBox(settings.encryption_keys).encrypt(secret),
    )
    session.add(subscription)
    session.commit()
    return SubscriptionWithSecret(subscription=subscription, secret=secret)


def get_subscription(session: Session, tenant_id: str, subscription_id: str) -> Subscription:
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or subscription.tenant_id != tenant_id or subscription.deleted_at:
        raise NotFoundError(f"subscription {subscription_id} not found")
    return subscription
