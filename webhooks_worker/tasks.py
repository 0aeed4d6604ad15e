"""Celery tasks: thin, named, taking ids. The work lives in plain functions."""

from __future__ import annotations

import math

from flask import current_app
from sqlalchemy.exc import OperationalError

from webhooks_api.domain.ids import derived_id
from webhooks_api.extensions import db
from webhooks_api.messaging.celery_glue import celery
from webhooks_api.messaging.enqueue import send_now
from webhooks_api.messaging.names import (
    BULK_RETRY_TASK,
    DELIVER_TASK,
    ENQUEUE_TASK,
    MAINTENANCE_QUEUE,
    PUBLISH_TASK,
    RETRY_QUEUE,
    SWEEP_TASK,
)
from webhooks_worker.delivery.attempt import Outcome, attempt_delivery
from webhooks_worker.maintenance.bulk_retry import run_chunk
from webhooks_worker.maintenance.sweep import sweep as sweep_stalled
from webhooks_worker.publishing.fanout import chunk_messages
from webhooks_worker.publishing.publish import publish_stored_or_new

# A database blip is transient: try again shortly rather than drop the message.
_DB_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 2, "retry_backoff_max": 60,
             "retry_jitter": True, "max_retries": None}


def _settings():
    return current_app.config["WEBHOOKS_SETTINGS"]


@celery.task(name=PUBLISH_TASK, bind=True, **_DB_RETRY)
def publish(self, event_type=None, event_data=None, tenant_id=None, metadata=None,
            event_id=None):
    """Store (if new) and fan out one event: one deliver task per matching subscription.

    A new event without an `event_id` gets one derived from this message's task id, which
    a redelivery (a worker died before its ack) and an autoretry keep: processing the same
    message twice stores one event, not a second one under a new id."""
    if event_type is not None and event_id is None and self.request.id:
        event_id = derived_id("evt", self.request.id)
    return publish_stored_or_new(db.session, _settings(), tenant_id=tenant_id,
                                 event_type=event_type, event_data=event_data,
                                 metadata=metadata, event_id=event_id)


@celery.task(name=ENQUEUE_TASK)
def enqueue(delivery_ids: list[str], trigger: str = "automatic"):
    """Send the first-attempt messages of part of a large fan-out (one chunk of the
    publish task's); a chunk the broker does not take is left to the sweep."""
    return send_now(chunk_messages(db.session, delivery_ids, trigger))


@celery.task(name=DELIVER_TASK, bind=True, **_DB_RETRY)
def deliver(self, delivery_id: str, attempt_number: int = 1, trigger: str = "automatic",
            deferrals: int = 0):
    """One attempt of one delivery; schedules the next by countdown when it fails, or this
    one again when it was put off (`deferrals`: how often, for a full window)."""
    outcome = attempt_delivery(db.session, _settings(), delivery_id, attempt_number, trigger,
                               deferrals)
    if outcome is not None and outcome.retry_in is not None:
        raise self.retry(args=(), **_next_attempt(delivery_id, attempt_number, trigger,
                                                  outcome))
    return outcome.status if outcome else None


def _next_attempt(delivery_id: str, attempt_number: int, trigger: str, outcome: Outcome) -> dict:
    """The countdown message of the attempt after `outcome`: the same delivery id, the next
    attempt number, on the retry queue (workers take first attempts before it). A deferral
    (circuit breaker, rate limit, full window) used no attempt: the same number again."""
    kwargs = {"delivery_id": delivery_id,
              "attempt_number": attempt_number + (0 if outcome.deferred else 1),
              "trigger": trigger if outcome.deferred else "automatic"}
    if outcome.deferrals:
        kwargs["deferrals"] = outcome.deferrals
    return {"countdown": _broker_countdown(outcome.retry_in), "queue": RETRY_QUEUE,
            "kwargs": kwargs, "argsrepr": outcome.retry_reprs[0],
            "kwargsrepr": outcome.retry_reprs[1]}


def _broker_countdown(seconds: float) -> float:
    if _settings().broker_is_amqp:
        # RabbitMQ delays by whole seconds (Celery's native delayed delivery truncates the
        # countdown and refuses 0, rejecting the task): a shorter wait, such as a rate
        # limit's rest of a second, is rounded up there.
        return max(1, math.ceil(seconds))
    return seconds


@celery.task(name=BULK_RETRY_TASK, bind=True, **_DB_RETRY)
def bulk_retry(self, bulk_retry_id: str, step: int = 0):
    """One chunk of a bulk retry job, then the message of the next: at once, when the
    tenant's budget allows more, or after the rest of its one-second window. A next
    message the broker refuses fails this task; the sweep resumes the job."""
    chunk = run_chunk(db.session, bulk_retry_id, step)
    if chunk.next_in is not None:
        delay = {"countdown": _broker_countdown(chunk.next_in)} if chunk.next_in > 0 else {}
        self.apply_async(kwargs={"bulk_retry_id": bulk_retry_id, "step": chunk.next_step},
                         queue=MAINTENANCE_QUEUE, **delay)
    return chunk.queued


@celery.task(name=SWEEP_TASK)
def sweep():
    """Re-enqueue what the broker lost; runs every minute from beat."""
    report = sweep_stalled(db.session, _settings())
    return {"events_fanned_out": report.events_fanned_out,
            "deliveries_requeued": report.deliveries_requeued,
            "bulk_retries_resumed": report.bulk_retries_resumed}
