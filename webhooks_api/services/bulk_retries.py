"""Bulk retry jobs as a tenant sees them: create one for a filter, read its progress,
cancel it (docs/API.md "Bulk retries").

A job re-sends, as manual re-sends, the tenant's deliveries in one undelivered state
created in [since, until) (at most 14 days), optionally of one event type, subscription or
last response status. Creating it counts the matches (the snapshot it works on: a
delivery that changes afterwards is left alone) and sends its first chunk after commit;
the worker does the rest (webhooks_worker.maintenance.bulk_retry). An Idempotency-Key
makes a repeat answer the job it created, as `POST /publish` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.ids import ID_PATTERN, new_id
from webhooks_api.domain.models import BulkRetry, Delivery, DeliveryAttempt
from webhooks_api.errors import ConflictError, InvalidInputError, NotFoundError
from webhooks_api.messaging.enqueue import bulk_retry_message, send_after_commit
from webhooks_api.services.subscriptions import get_subscription

logger = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class RetryFilter:
    """Which deliveries a job re-sends."""

    status: str
    since: datetime
    until: datetime
    event_type: str | None = None
    subscription_id: str | None = None
    response_status: int | None = None


@dataclass(frozen=True)
class Progress:
    """A job as the API shows it; `done` counts the attempts its re-sends made."""

    id: str
    status: str
    filter: RetryFilter
    matched: int
    queued: int
    done: int
    skipped: dict[str, int]
    per_second: int
    created_at: datetime
    finished_at: datetime | None


def job_filter(job: BulkRetry) -> RetryFilter:
    return RetryFilter(job.delivery_status, job.since, job.until, job.event_type,
                       job.subscription_id, job.response_status)


def matching(tenant_id: str, wanted: RetryFilter, snapshot_at) -> list[ColumnElement]:
    """The conditions on `Delivery` of the filter's matches as they were at `snapshot_at`
    (the job's creation): a delivery changed since then (re-sent, say) is not one."""
    conditions = [Delivery.tenant_id == tenant_id, Delivery.status == wanted.status,
                  Delivery.created_at >= wanted.since, Delivery.created_at < wanted.until,
                  Delivery.updated_at <= snapshot_at]
    if wanted.event_type is not None:
        conditions.append(Delivery.event_type == wanted.event_type)
    if wanted.subscription_id is not None:
        conditions.append(Delivery.subscription_id == wanted.subscription_id)
    if wanted.response_status is not None:
        conditions.append(Delivery.last_response_status == wanted.response_status)
    return conditions


def _check(session: Session, tenant_id: str, wanted: RetryFilter) -> None:
    if wanted.until <= wanted.since:
        raise InvalidInputError("the window is empty", {"until": ["must be after since"]})
    if wanted.until - wanted.since > MAX_WINDOW:
        raise InvalidInputError("the window is too long",
                                {"until": ["must be at most 14 days after since"]})
    if wanted.subscription_id is not None:
        try:
            get_subscription(session, tenant_id, wanted.subscription_id)
        except NotFoundError:
            raise InvalidInputError(
                f"subscription {wanted.subscription_id} not found",
                {"subscription_id": ["no such subscription"]}) from None


def _by_key(session: Session, tenant_id: str, idempotency_key: str) -> BulkRetry | None:
    return session.scalar(select(BulkRetry).where(BulkRetry.tenant_id == tenant_id,
                                                  BulkRetry.idempotency_key == idempotency_key))


def create_bulk_retry(session: Session, settings: Settings, tenant_id: str,
                      wanted: RetryFilter, idempotency_key: str | None = None) -> Progress:
    """Count the matches and start the job; a job with none is done at once. A repeated
    key answers the job it made (whatever this filter says)."""
    if idempotency_key is not None and (job := _by_key(session, tenant_id, idempotency_key)):
        return progress(session, job)
    _check(session, tenant_id, wanted)
    matched = session.scalar(select(func.count()).select_from(Delivery)
                             .where(*matching(tenant_id, wanted, func.now())))
    nothing = matched == 0
    job = session.scalars(
        insert(BulkRetry)
        .values(id=new_id("brt"), tenant_id=tenant_id, idempotency_key=idempotency_key,
                delivery_status=wanted.status, since=wanted.since, until=wanted.until,
                event_type=wanted.event_type, subscription_id=wanted.subscription_id,
                response_status=wanted.response_status,
                per_second=settings.bulk_retry_per_second, matched=matched,
                status="done" if nothing else "running", scanned_all=nothing,
                done_count=0 if nothing else None,
                finished_at=func.now() if nothing else None)
        .on_conflict_do_nothing(constraint="uq_bulk_retries_tenant_key")
        .returning(BulkRetry)
    ).one_or_none()
    if job is None:  # the same key, committed by a concurrent request meanwhile
        session.rollback()
        return progress(session, _by_key(session, tenant_id, idempotency_key))
    if not nothing:
        send_after_commit(session, [bulk_retry_message(job.id, job.step)])
    started = progress(session, job)  # before the first chunk can run
    session.commit()
    logger.info("bulk retry %s of tenant %s: %d %s deliveries matched", job.id, tenant_id,
                matched, wanted.status)
    return started


def _get(session: Session, tenant_id: str, bulk_retry_id: str,
         for_update: bool = False) -> BulkRetry:
    job = None
    if ID_PATTERN.match(bulk_retry_id):
        statement = select(BulkRetry).where(BulkRetry.id == bulk_retry_id,
                                            BulkRetry.tenant_id == tenant_id)
        if for_update:  # not FOR UPDATE: the attempts' records need no key lock on it
            statement = statement.with_for_update(key_share=True)
        job = session.scalar(statement)
    if job is None:
        raise NotFoundError(f"bulk retry {bulk_retry_id} not found")
    return job


def attempts_made(session: Session, bulk_retry_id: str) -> int:
    return session.scalar(select(func.count()).select_from(DeliveryAttempt)
                          .where(DeliveryAttempt.bulk_retry_id == bulk_retry_id))


def progress(session: Session, job: BulkRetry) -> Progress:
    done = job.done_count if job.done_count is not None else attempts_made(session, job.id)
    return Progress(id=job.id, status=job.status, filter=job_filter(job),
                    matched=job.matched, queued=job.queued, done=done,
                    skipped=dict(job.skipped), per_second=job.per_second,
                    created_at=job.created_at, finished_at=job.finished_at)


def get_bulk_retry(session: Session, tenant_id: str, bulk_retry_id: str) -> Progress:
    return progress(session, _get(session, tenant_id, bulk_retry_id))


def cancel_bulk_retry(session: Session, tenant_id: str, bulk_retry_id: str) -> Progress:
    """Queue nothing more (a chunk running now finishes first: the row lock orders them);
    re-sends already queued still go. Again on a cancelled job: nothing changes; on a
    done one: 409."""
    job = _get(session, tenant_id, bulk_retry_id, for_update=True)
    if job.status == "done":
        session.rollback()
        raise ConflictError(f"bulk retry {job.id} is done; there is nothing to cancel")
    if job.status == "running":
        job.status = "cancelled"
        logger.info("bulk retry %s of tenant %s cancelled after %d queued", job.id,
                    tenant_id, job.queued)
    cancelled = progress(session, job)
    session.commit()
    return cancelled
