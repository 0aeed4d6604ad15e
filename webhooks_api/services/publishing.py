"""Publishing from the API and in-process: store first, enqueue the fan-out after commit.

The broker being down does not fail a publish: the event is committed, and the sweep fans
out every stored event whose message never arrived.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.catalogue import is_operational
from webhooks_api.messaging.enqueue import publish_message, send_after_commit
from webhooks_api.services.events import StoredEvent, store_event


def record_event(session: Session, settings: Settings, tenant_id: str, event_type: str, data,
                 metadata=None, event_id: str | None = None) -> StoredEvent:
    """Store the event in the caller's transaction; its fan-out is sent once that commits."""
    stored = store_event(session, settings, tenant_id, event_type, data, metadata, event_id)
    if stored.created:
        send_after_commit(session, [publish_message(tenant_id, stored.event.event_id)])
    return stored


def record_operational_event(session: Session, settings: Settings, tenant_id: str,
                             event_type: str, subscription_id: str,
                             data: dict) -> StoredEvent:
    """The one way the service announces something about a subscription (DESIGN.md,
    docs/HEALTH.md "Operational events"): a `webhook.*` event of its tenant, stored in the
    caller's transaction so it exists exactly when the change it announces does. `data`
    starts with `subscription_id`, which the fan-out reads to keep the event from that very
    subscription; `*` never matches an operational type, so only the subscriptions naming
    it (or `webhook.*`) get it. Times are written as ISO 8601 UTC seconds, as the event's
    own `timestamp`."""
    if not is_operational(event_type):
        raise ValueError(f"{event_type} is not an operational webhook.* type")
    data = {"subscription_id": subscription_id, **{
        key: value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, datetime) else value
        for key, value in data.items()}}
    return record_event(session, settings, tenant_id, event_type, data)


def publish_event(session: Session, settings: Settings, tenant_id: str, event_type: str, data,
                  metadata=None, event_id: str | None = None) -> StoredEvent:
    """One unit of work for the API: record, commit, then the message goes out. The
    returned event keeps the values it was stored with (the commit does not expire it),
    so answering with them costs no second read."""
    try:
        stored = record_event(session, settings, tenant_id, event_type, data, metadata,
                              event_id)
        session.expunge(stored.event)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return stored
