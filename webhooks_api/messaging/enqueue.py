"""Enqueueing after commit: the API reaches the worker only through these messages.

Messages are sent only after the database commit that made their rows visible; a failed
send is logged and left to `webhooks.sweep`, which finds the rows PostgreSQL still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from webhooks_api.messaging.batch_sender import send_batched
from webhooks_api.messaging.labels import with_reprs
from webhooks_api.messaging.message import Message
from webhooks_api.messaging.names import (
    BULK_RETRY_TASK,
    DELIVER_QUEUE,
    DELIVER_TASK,
    ENQUEUE_TASK,
    MAINTENANCE_QUEUE,
    PUBLISH_QUEUE,
    PUBLISH_TASK,
    RETRY_QUEUE,
)

logger = logging.getLogger(__name__)

# Fail fast when the broker is down: the rows are committed and the sweep sends them later,
# so a request must not hang on broker reconnection.
_SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                      "interval_max": 0.2}
_PENDING_KEY = "webhooks_pending_messages"


def _send(celery: Celery, producer, message: Message) -> bool:
    labels = ({"argsrepr": message.reprs[0], "kwargsrepr": message.reprs[1]}
              if message.reprs else {})
    try:
        celery.send_task(
            message.name, kwargs=message.kwargs, queue=message.queue, retry=True,
            retry_policy=_SEND_RETRY_POLICY, producer=producer, **labels,
        )
        return True
    except Exception:  # the broker is down: PostgreSQL holds the row, the sweep resends
        logger.warning("enqueue of %s failed (%s); the sweep will resend it", message.name,
                       message.kwargs, exc_info=True)
        return False


def publish_message(tenant_id: str, event_id: str) -> Message:
    return Message(PUBLISH_TASK, {"tenant_id": tenant_id, "event_id": event_id}, PUBLISH_QUEUE)


def enqueue_message(delivery_ids: list[str], trigger: str) -> Message:
    """Part of a large fan-out, handed to any worker to send (webhooks_worker.publishing.publish):
    on the deliver queue, sent ahead of the fan-out's first deliveries, so workers take it
    before them. Flower shows a count, not the ids."""
    return Message(ENQUEUE_TASK, {"delivery_ids": delivery_ids, "trigger": trigger},
                   DELIVER_QUEUE, ("()", repr({"deliveries": len(delivery_ids),
                                               "trigger": trigger})))


def bulk_retry_message(bulk_retry_id: str, step: int) -> Message:
    """The next chunk of a bulk retry job; `step` says which (a stale copy runs nothing)."""
    return Message(BULK_RETRY_TASK, {"bulk_retry_id": bulk_retry_id, "step": step},
                   MAINTENANCE_QUEUE)


def deliver_queue(attempt_number: int, trigger: str) -> str:
    """First attempts and single manual re-sends are fresh traffic; everything else (a
    later automatic attempt, a swept re-send) is a retry."""
    fresh = trigger == "manual" or (trigger == "automatic" and attempt_number == 1)
    return DELIVER_QUEUE if fresh else RETRY_QUEUE


def deliver_message(delivery_id: str, attempt_number: int, trigger: str,
                    reprs: tuple[str, str] | None = None, queue: str | None = None) -> Message:
    kwargs = {"delivery_id": delivery_id, "attempt_number": attempt_number, "trigger": trigger}
    return Message(DELIVER_TASK, kwargs, queue or deliver_queue(attempt_number, trigger),
                   reprs)


def send_now(messages: Iterable[Message]) -> int:
    """Send messages whose rows are already committed; returns how many the broker took."""

    messages = with_reprs(list(messages))
    if not messages:
        return 0
    celery = current_app.extensions["celery"]
    # One producer (one pooled broker connection) for the whole batch: a fan-out of
    # 10,000 does not acquire and release a connection per message.
    with celery.producer_or_acquire() as producer:
        if producer.supports_batch_publish:  # Redis: one pipeline per chunk of messages
            return send_batched(celery, producer, messages, _SEND_RETRY_POLICY)
        # RabbitMQ publishes each message at once, with publisher confirms.
        return sum(_send(celery, producer, message) for message in messages)


def send_after_commit(session: Session | scoped_session, messages: Iterable[Message]) -> None:
    """Queue messages on `session`: sent when its transaction commits, dropped on rollback."""
    if isinstance(session, scoped_session):
        # Listening on a scoped_session would listen on every session its factory makes,
        # adding a listener per request; listen on the session in use instead.
        session = session()
    pending = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []
        event.listen(session, "after_commit", _flush_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
    pending.extend(messages)


def _flush_pending(session: Session) -> None:
    messages = session.info.get(_PENDING_KEY) or []
    session.info[_PENDING_KEY] = []
    send_now(messages)


def _drop_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info[_PENDING_KEY] = []
