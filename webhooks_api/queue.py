"""Task names and enqueueing: the API reaches the worker only through these names.

Messages are sent only after the database commit that made their rows visible; a failed
send is logged and left to `webhooks.sweep`, which finds the rows PostgreSQL still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery
from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from .config import Settings

logger = logging.getLogger(__name__)

PUBLISH_TASK = "webhooks.publish"
DELIVER_TASK = "webhooks.deliver"
SWEEP_TASK = "webhooks.sweep"

PUBLISH_QUEUE = "webhooks.publish"
DELIVER_QUEUE = "webhooks.deliver"
MAINTENANCE_QUEUE = "webhooks.maintenance"

# Fail fast when the broker is down: the rows are committed and the sweep sends them later,
# so a request must not hang on broker reconnection.
_SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                      "interval_max": 0.2}
_PENDING_KEY = "webhooks_pending_messages"


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Bind the shared Celery app to Flask: each task runs in an app context of its own."""
    from .extensions import celery

    celery.config_from_object("celeryconfig")
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=settings.broker_transport_options,
        worker_eta_task_limit=settings.worker_eta_task_limit,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": float(settings.sweep_interval_seconds),
                # A sweep not started within its interval is dropped: the next one covers
                # it, so sweeps do not pile up while the workers are down.
                "options": {"expires": float(settings.sweep_interval_seconds)},
            },
        },
    )
    celery.flask_app = app
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _send(name: str, kwargs: dict, queue: str) -> bool:
    try:
        current_app.extensions["celery"].send_task(
            name, kwargs=kwargs, queue=queue, retry=True, retry_policy=_SEND_RETRY_POLICY
        )
        return True
    except Exception:  # the broker is down: PostgreSQL holds the row, the sweep resends
        logger.warning("enqueue of %s failed (%s); the sweep will resend it", name, kwargs,
                       exc_info=True)
        return False


def publish_message(tenant_id: str, event_id: str) -> tuple[str, dict, str]:
    return PUBLISH_TASK, {"tenant_id": tenant_id, "event_id": event_id}, PUBLISH_QUEUE


def deliver_message(delivery_id: str, attempt_number: int, trigger: str) -> tuple[str, dict, str]:
    kwargs = {"delivery_id": delivery_id, "attempt_number": attempt_number, "trigger": trigger}
    return DELIVER_TASK, kwargs, DELIVER_QUEUE


def send_now(messages: Iterable[tuple[str, dict, str]]) -> int:
    """Send messages whose rows are already committed; returns how many the broker took."""
    return sum(_send(name, kwargs, queue) for name, kwargs, queue in messages)


def send_after_commit(session: Session | scoped_session,
                      messages: Iterable[tuple[str, dict, str]]) -> None:
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
