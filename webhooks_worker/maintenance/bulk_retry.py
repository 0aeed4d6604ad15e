"""The body of `webhooks.bulk_retry`: one chunk of a bulk retry job, then the next.

A job (webhooks_api.services.bulk_retries) is a chain of chunk messages on the
maintenance queue. Each chunk, in one transaction:

1. locks the job row and runs only if its message carries the job's current `step` (a
   duplicate, a redelivered or a re-kicked copy of a chunk that already ran finds a newer
   step and does nothing), then advances the step for the next message;
2. takes what the tenant's one-second budget has left (`bulk_retry_budgets`, shared by all
   the tenant's jobs under its row lock; at most the job's `per_second`);
3. walks the matching deliveries oldest first from the job's cursor, share-locks their
   subscriptions (a pause or delete waits, then disables the re-sends too), skips those
   of paused, disabled or deleted subscriptions and those with an attempt in flight,
   counted by reason, and reopens the others as manual re-sends recorded for the job
   (webhooks_api.services.deliveries.queue_manual_attempts), on the retry queue;
4. moves the cursor past what it considered and adds to the counts.

The deliver messages go out after the commit, and then the next chunk's message: at once
while budget is left, when the window ends if not. So every match is queued at most once
per job, whatever runs twice; a worker killed mid-chunk rolls it back, and its message
comes back (or the sweep re-kicks a job whose chain went quiet: `stalled`).

Once every match was considered, or the job was cancelled, the chain waits until none of
its re-sends is still queued, then counts its attempts and marks it finished (`done`,
unless it was cancelled). Matches that changed after the job was created (re-sent by other
means, pruned) are counted as skipped `changed_since_matched`, so that a done job's
`queued` and `skipped` add up to `matched`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.models import BulkRetry, Delivery, Subscription
from webhooks_api.messaging.enqueue import bulk_retry_message, send_now
from webhooks_api.messaging.names import RETRY_QUEUE
from webhooks_api.services.bulk_retries import attempts_made, job_filter, matching
from webhooks_api.services.deliveries import queue_manual_attempts

logger = logging.getLogger(__name__)

# Re-sends queued in one transaction at most, however high the rate: a chunk stays short.
CHUNK_SIZE = 500
# Matches considered by one chunk at most, skipped ones included.
SCAN_LIMIT = 5000
# How often a job whose re-sends are all queued checks whether they have finished.
DRAIN_SECONDS = 1.0
# Past the end of the tenant's window (the next chunk's clock must see it over).
MIN_WAIT_SECONDS = 0.02
CHANGED = "changed_since_matched"

# The tenant's window: a new one when the last began a second ago or more. Returns what
# was queued in it and the seconds until it ends.
_TAKE_BUDGET = text("""
    INSERT INTO bulk_retry_budgets AS b (tenant_id, window_started_at, queued)
    VALUES (:tenant_id, now(), 0)
    ON CONFLICT (tenant_id) DO UPDATE
    SET window_started_at = CASE WHEN b.window_started_at <= now() - interval '1 second'
                                 THEN now() ELSE b.window_started_at END,
        queued = CASE WHEN b.window_started_at <= now() - interval '1 second'
                      THEN 0 ELSE b.queued END
    RETURNING b.queued, greatest(0, extract(epoch FROM b.window_started_at
                                               + interval '1 second' - clock_timestamp()))
              AS rest_seconds
""")
_SPEND_BUDGET = text("""
    UPDATE bulk_retry_budgets SET queued = queued + :count WHERE tenant_id = :tenant_id
""")


@dataclass(frozen=True)
class Chunk:
    """What a chunk did: re-sends queued, and when the next chunk (`next_step`) is due, in
    seconds (None: the job is over, or this message was not the job's current one)."""

    queued: int
    next_in: float | None = None
    next_step: int | None = None


def _skip_reason(subscription, in_flight: bool) -> str | None:
    if subscription.deleted_at is not None:
        return "subscription_deleted"
    if subscription.status != "active":
        return f"subscription_{subscription.status}"
    return "attempt_in_progress" if in_flight else None


def _next_matches(session: Session, job: BulkRetry, conditions: list, limit: int) -> list:
    after_cursor = ([] if job.cursor_id is None else
                    [tuple_(Delivery.created_at, Delivery.id)
                     > tuple_(job.cursor_created_at, job.cursor_id)])
    return session.execute(
        select(Delivery.id, Delivery.created_at, Delivery.subscription_id,
               func.coalesce(Delivery.claimed_until > func.now(), False).label("in_flight"))
        .where(*conditions, *after_cursor)
        .order_by(Delivery.created_at, Delivery.id)
        .limit(limit)
    ).all()


def _queue_matches(session: Session, job: BulkRetry, allowance: int) -> int:
    """Queue up to `allowance` matches after the cursor; returns how many."""
    conditions = matching(job.tenant_id, job_filter(job), job.created_at)
    skipped: Counter = Counter()
    queued = scanned = 0
    while queued < allowance and scanned < SCAN_LIMIT:
        wanted = allowance - queued
        rows = _next_matches(session, job, conditions, wanted)
        if not rows:
            job.scanned_all = True
            break
        subscriptions = {row.id: row for row in session.execute(
            select(Subscription.id, Subscription.status, Subscription.deleted_at)
            .where(Subscription.id.in_(sorted({row.subscription_id for row in rows})))
            .order_by(Subscription.id)
            .with_for_update(read=True))}
        ready = []
        for row in rows:
            if reason := _skip_reason(subscriptions[row.subscription_id], row.in_flight):
                skipped[reason] += 1
            else:
                ready.append(row.id)
        if ready:
            # Re-checked as they are updated: one that changed meanwhile is left alone.
            queued += len(queue_manual_attempts(
                session, select(Delivery.id).where(Delivery.id.in_(ready), *conditions),
                queue=RETRY_QUEUE, bulk_retry_id=job.id))
        scanned += len(rows)
        job.cursor_created_at, job.cursor_id = rows[-1].created_at, rows[-1].id
        if len(rows) < wanted:
            job.scanned_all = True
            break
    job.queued += queued
    if skipped:
        job.skipped = dict(Counter(job.skipped) + skipped)
    return queued


def _finish_when_drained(session: Session, job: BulkRetry) -> float | None:
    """DRAIN_SECONDS while a re-send of the job is still queued; else mark it finished."""
    still_queued = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.bulk_retry_id == job.id, Delivery.manual_pending))
    if still_queued:
        return DRAIN_SECONDS
    job.done_count = attempts_made(session, job.id)
    job.finished_at = func.now()
    if job.status == "running":
        job.status = "done"
        changed = job.matched - job.queued - sum(job.skipped.values())
        if changed > 0:
            job.skipped = {**job.skipped, CHANGED: changed}
    logger.info("bulk retry %s %s: %d matched, %d queued, %d attempts made, skipped %s",
                job.id, job.status, job.matched, job.queued, job.done_count, job.skipped)
    return None


def run_chunk(session: Session, bulk_retry_id: str, step: int) -> Chunk:
    """One chunk of the job, committed; its deliver messages are sent after the commit."""
    job = session.scalar(select(BulkRetry).where(BulkRetry.id == bulk_retry_id)
                         .with_for_update(key_share=True))
    if job is None or job.finished_at is not None or job.step != step:
        session.rollback()
        logger.info("bulk retry %s step %s: nothing to run (finished, duplicate or stale)",
                    bulk_retry_id, step)
        return Chunk(0)
    job.step = next_step = step + 1
    queued = 0
    if job.status == "running" and not job.scanned_all:
        used, rest_seconds = session.execute(_TAKE_BUDGET,
                                             {"tenant_id": job.tenant_id}).one()
        allowance = min(job.per_second - used, CHUNK_SIZE)
        if allowance > 0:
            queued = _queue_matches(session, job, allowance)
            session.execute(_SPEND_BUDGET, {"count": queued, "tenant_id": job.tenant_id})
            logger.info("bulk retry %s: %d re-sends queued (%d of %d matched)", job.id,
                        queued, job.queued, job.matched)
        budget_left = job.per_second - used - queued > 0
        next_in = (DRAIN_SECONDS if job.scanned_all else 0.0 if budget_left
                   else max(float(rest_seconds), MIN_WAIT_SECONDS))
    else:
        next_in = _finish_when_drained(session, job)
    session.commit()
    return Chunk(queued, next_in, next_step)


def stalled(session: Session, settings: Settings) -> int:
    """Re-send the current chunk message of every unfinished job that has not moved for
    the sweep margin (its message was lost, or the broker refused the next one); a copy
    of a message still on its way runs nothing (its step is taken)."""
    jobs = session.execute(
        select(BulkRetry.id, BulkRetry.step)
        .where(BulkRetry.finished_at.is_(None),
               BulkRetry.updated_at < func.now() - timedelta(
                   seconds=settings.sweep_margin_seconds))
    ).all()
    session.rollback()
    if jobs:
        logger.warning("sweep: re-kicking %d bulk retry jobs with no progress", len(jobs))
    return send_now(bulk_retry_message(job.id, job.step) for job in jobs)
