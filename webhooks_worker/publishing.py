"""The body of `webhooks.publish`: store the event when it is new, fan it out, enqueue."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.errors import DomainError, NotFoundError, PayloadTooLargeError
from webhooks_api.queue import send_now
from webhooks_api.services.events import get_event, store_event

from .fanout import fan_out
from .metrics import PUBLISH_REJECTED

logger = logging.getLogger(__name__)


def publish_stored_or_new(session: Session, settings: Settings, *, tenant_id: str,
                          event_type: str | None, event_data, metadata, event_id: str | None
                          ) -> list[str]:
    """Fan out a stored event (only `tenant_id` and `event_id` given) or store a new one
    from `publish.delay()` arguments first. Returns the delivery ids it enqueued.

    Invalid input is logged with its reason and dropped: retrying cannot fix it.
    """
    try:
        if event_type is None:
            event = get_event(session, tenant_id, event_id)
        else:
            event = store_event(session, settings, tenant_id, event_type, event_data, metadata,
                                event_id).event
    except DomainError as error:
        session.rollback()
        reason = rejection_reason(error)
        PUBLISH_REJECTED.labels(reason=reason).inc()
        logger.warning("publish rejected (%s): tenant=%s event=%s type=%s: %s %s",
                       reason, tenant_id, event_id, event_type, error.message,
                       error.errors or "")
        return []
    if event.fanned_out_at is not None:
        session.rollback()
        logger.info("event %s of tenant %s already fanned out", event.event_id, tenant_id)
        return []
    messages = fan_out(session, event)
    # Read before the commit expires the object: a read after it costs a query.
    event_id, event_type = event.event_id, event.event_type
    session.commit()
    send_now(messages)
    delivery_ids = [message.kwargs["delivery_id"] for message in messages]
    logger.info("event %s (%s) of tenant %s fanned out to %d deliveries",
                event_id, event_type, tenant_id, len(delivery_ids))
    return delivery_ids


def rejection_reason(error: DomainError) -> str:
    """A short, bounded label for the metric: the field at fault, or the kind of error."""
    if isinstance(error, PayloadTooLargeError):
        return "payload_too_large"
    if isinstance(error, NotFoundError):
        return "event_not_found"
    field = next(iter(error.errors or {}), None)
    return f"invalid_{field}" if field else "invalid_input"
