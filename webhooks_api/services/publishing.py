"""Publishing from the API and in-process: store first, enqueue the fan-out after commit.

The broker being down does not fail a publish: the event is committed, and the sweep fans
out every stored event whose message never arrived.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.messaging.enqueue import publish_message, send_after_commit
from webhooks_api.services.events import StoredEvent, store_event


def record_event(session: Session, settings: Settings, tenant_id: str, event_type: str, data,
                 metadata=None, event_id: str | None = None) -> StoredEvent:
    """Store the event in the caller's transaction; its fan-out is sent once that commits."""
    stored = store_event(session, settings, tenant_id, event_type, data, metadata, event_id)
    if stored.created:
        send_after_commit(session, [publish_message(tenant_id, stored.event.event_id)])
    return stored


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
