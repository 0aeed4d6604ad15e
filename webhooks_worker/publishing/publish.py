"""The body of `webhooks.publish`: store the event when it is new, fan it out, enqueue."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.errors import DomainError, NotFoundError, PayloadTooLargeError
from webhooks_api.messaging.batch_sender import CHUNK_MESSAGES, chunks
from webhooks_api.messaging.enqueue import enqueue_message, send_now
from webhooks_api.messaging.message import Message
from webhooks_api.services.events import get_event, new_event, store_event
from webhooks_worker.publishing import known_types
from webhooks_worker.publishing.fanout import fan_out, store_and_fan_out
from webhooks_worker.runtime.metrics import PUBLISH_REJECTED

logger = logging.getLogger(__name__)


def publish_stored_or_new(session: Session, settings: Settings, *, tenant_id: str,
                          event_type: str | None, event_data, metadata, event_id: str | None
                          ) -> list[str]:
    """Fan out a stored event (only `tenant_id` and `event_id` given) or store a new one
    from `publish.delay()` arguments first. Returns the delivery ids it enqueued.

    A new event costs one statement and no transaction around it (validation reads
    nothing for a built-in type or a remembered custom one); a repeat id falls back to the
    stored event, fanned out only if no run did. Invalid input is logged with its reason
    and dropped: retrying cannot fix it.
    """
    try:
        if event_type is None:
            event = get_event(session, tenant_id, event_id)
        else:
            new = new_event(session, settings, tenant_id, event_type, event_data, metadata,
                            event_id, known_types.lookup)
            messages = store_and_fan_out(new)
            if messages is not None:
                return _enqueue(messages, tenant_id, new.event_id, new.event_type)
            # A repeat id (or a remembered type since gone): the transactional path, which
            # validates afresh and stores, or reads the stored event (fanned out below only
            # if no run did).
            known_types.forget(tenant_id, event_type)
            event = store_event(session, settings, tenant_id, event_type, event_data,
                                metadata, new.event_id).event
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
    return _enqueue(messages, tenant_id, event_id, event_type)


def _enqueue(messages: list[Message], tenant_id: str, event_id: str, event_type: str
             ) -> list[str]:
    """Send the deliver messages of a committed fan-out; returns their delivery ids.

    A fan-out larger than one chunk sends its first chunk itself and hands the others to
    `webhooks.enqueue` tasks, sent ahead of that chunk on the deliver queue, so free workers
    take them before its deliveries: building messages is CPU-bound (~0.12 ms each), so
    several processes enqueue 10,000 faster than one whose CPU the first deliveries already
    share (docs/decisions/0005-batched-enqueue.md).
    """
    handed = [enqueue_message([m.kwargs["delivery_id"] for m in chunk], chunk[0].kwargs["trigger"])
              for chunk in chunks(messages[CHUNK_MESSAGES:])]
    send_now(handed + messages[:CHUNK_MESSAGES])  # the others start on theirs meanwhile
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
