"""The in-process EventBus for module developers (DESIGN.md "Publishing").

    from webhooks_api.services.bus import get_event_bus

    bus = get_event_bus()
    bus.publish("invoice.created", {"invoice_id": "inv_1"}, tenant_id, db=db.session)
    db.session.commit()          # the event is enqueued only now; a rollback sends nothing

With `db=` (a SQLAlchemy session) the event is written in the caller's transaction and its
fan-out message goes out only after that transaction commits. Without it, the bus uses a
session of its own and commits at once. Either way the event is stored before anything is
enqueued, so a broker outage loses nothing: the sweep fans out stored events. Call it
inside the Flask app context (a request, a CLI command, or a Celery task of this app).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from flask import current_app
from sqlalchemy.orm import Session, scoped_session

from webhooks_api.errors import DomainError
from webhooks_api.extensions import db as flask_db
from webhooks_api.services.event_types import EventTypeView, register_event_type
from webhooks_api.services.publishing import record_event


class EventBus:
    """Stateless facade over the publishing services; get it with `get_event_bus()`."""

    def publish(self, event_type: str, event_data: dict, tenant_id: str,
                metadata: dict | None = None, event_id: str | None = None,
                db: Session | scoped_session | None = None) -> str:
        """Store one event and enqueue its fan-out after commit; returns its event id (the
        stored one when `event_id` was seen before)."""
        return self.publish_batch([{
            "event_type": event_type, "event_data": event_data, "tenant_id": tenant_id,
            "metadata": metadata, "event_id": event_id,
        }], db=db)[0]

    def publish_batch(self, events: Iterable[Mapping], db: Session | scoped_session | None = None
                      ) -> list[str]:
        """Publish several events in one transaction: all are stored or none is.

        Each item holds `publish()`'s arguments by name (`event_type`, `event_data`,
        `tenant_id`, optional `metadata` and `event_id`). An invalid item raises the
        service's error, prefixed with its position, and nothing of the batch is stored.
        """
        if db is not None:
            return self._record_all(db, events)
        with Session(flask_db.engine, expire_on_commit=False) as session:
            event_ids = self._record_all(session, events)
            session.commit()
        return event_ids

    def register_event_type(self, name: str, description: str | None = None,
                            schema: dict | None = None, *, tenant_id: str) -> EventTypeView:
        """Register a tenant's own event type, with an optional JSON Schema for its data."""
        with Session(flask_db.engine, expire_on_commit=False) as session:
            return register_event_type(session, tenant_id, name=name,
                                       description=description, schema=schema)

    @staticmethod
    def _record_all(session: Session | scoped_session, events: Iterable[Mapping]) -> list[str]:
        settings = current_app.config["WEBHOOKS_SETTINGS"]
        event_ids = []
        for position, item in enumerate(events):
            try:
                stored = record_event(
                    session, settings, item["tenant_id"], item["event_type"],
                    item["event_data"], item.get("metadata"), item.get("event_id"),
                )
            except DomainError as error:
                raise type(error)(f"event {position} of the batch: {error.message}",
                                  error.errors) from error
            event_ids.append(stored.event.event_id)
        return event_ids


_bus: EventBus | None = None
_bus_lock = threading.Lock()


def get_event_bus() -> EventBus:
    """The process's one EventBus."""
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = EventBus()
        return _bus
