"""Task names and enqueueing: the API reaches the worker only through these names.

Messages are sent only after the database commit that made their rows visible; a failed
send is logged and left to `webhooks.sweep`, which finds the rows PostgreSQL still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

from celery import Celery
from flask import Flask, current_app
from kombu import Exchange, Queue
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from .batch_enqueue import send_batched
from .config import Settings

logger = logging.getLogger(__name__)

PUBLISH_TASK = "webhooks.publish"
DELIVER_TASK = "webhooks.deliver"
ENQUEUE_TASK = "webhooks.enqueue"
SWEEP_TASK = "webhooks.sweep"
PRUNE_TASK = "webhooks.prune"

PUBLISH_QUEUE = "webhooks.publish"
DELIVER_QUEUE = "webhooks.deliver"
# Retries (countdowns, swept re-sends, bulk replays) travel apart from first attempts, so a
# backlog of retries to sick endpoints never sits in front of a fresh delivery.
RETRY_QUEUE = "webhooks.retry"
MAINTENANCE_QUEUE = "webhooks.maintenance"
# The order a worker consumes in (-Q): on Redis it takes from the first non-empty queue
# (queue_order_strategy "priority"), so fresh traffic goes first.
WORKER_QUEUES = (PUBLISH_QUEUE, DELIVER_QUEUE, RETRY_QUEUE, MAINTENANCE_QUEUE)

# Fail fast when the broker is down: the rows are committed and the sweep sends them later,
# so a request must not hang on broker reconnection.
_SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                      "interval_max": 0.2}
_PENDING_KEY = "webhooks_pending_messages"


def task_queues(settings: Settings) -> tuple[Queue, ...]:
    """Each queue with an exchange and routing key of its own: on RabbitMQ, queues sharing
    the default exchange's key would each get a copy of every message (and of every
    delayed one). On RabbitMQ they are quorum queues, so Celery keeps countdowns in the
    broker (native delayed delivery, which needs topic exchanges) instead of in a
    worker's memory, where RabbitMQ's `consumer_timeout` (30 min) would kill the channel
    holding a 1 h or 6 h retry."""
    amqp = settings.broker_is_amqp
    arguments = {"x-queue-type": "quorum"} if amqp else None
    return tuple(Queue(name, Exchange(name, type="topic" if amqp else "direct"),
                       routing_key=name, queue_arguments=arguments)
                 for name in WORKER_QUEUES)


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Bind the shared Celery app to Flask: each task runs in an app context of its own."""
    from .extensions import celery

    celery.config_from_object("celeryconfig")
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport=settings.broker_transport,
        broker_transport_options=settings.broker_transport_options,
        task_queues=task_queues(settings),
        worker_eta_task_limit=settings.worker_eta_task_limit,
        task_time_limit=settings.task_time_limit_seconds,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": float(settings.sweep_interval_seconds),
                # A sweep not started within its interval is dropped: the next one covers
                # it, so sweeps do not pile up while the workers are down.
                "options": {"expires": float(settings.sweep_interval_seconds)},
            },
            "prune": {"task": PRUNE_TASK,
                      "schedule": float(settings.retention_interval_seconds)},
        },
    )
    celery.flask_app = app
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


class Message(NamedTuple):
    """A task message to send; `reprs` are Flower's (argsrepr, kwargsrepr), looked up at
    send time when the sender did not already know them."""

    name: str
    kwargs: dict
    queue: str
    reprs: tuple[str, str] | None = None


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
    """Part of a large fan-out, handed to any worker to send (webhooks_worker.publishing):
    on the publish queue, which workers take before deliveries. Flower shows a count, not
    the ids."""
    return Message(ENQUEUE_TASK, {"delivery_ids": delivery_ids, "trigger": trigger},
                   PUBLISH_QUEUE, ("()", repr({"deliveries": len(delivery_ids),
                                               "trigger": trigger})))


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
    from .task_labels import with_reprs  # it needs the task names defined here

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
