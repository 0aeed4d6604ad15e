"""Retention: prune what is older than WEBHOOKS_RETENTION_DAYS, a little at a time.

- Attempts of finished deliveries (success, failed, disabled) that started before the
  cutoff: the bulky rows (headers, response excerpts).
- Events created before the cutoff that were fanned out and have no delivery still
  expecting an attempt; their deliveries and attempts go with them (ON DELETE CASCADE).

A delivery that is pending or retrying, or has a manual re-send queued, is never pruned,
nor anything of its event. Each batch is one short transaction on at most `batch_size`
rows chosen with SKIP LOCKED, so pruning never holds a lock a worker waits on for long;
a run stops after `max_seconds` and the next run continues.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from webhooks_api.config import Settings

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_SECONDS = 60.0

_PRUNE_ATTEMPTS = text("""
    DELETE FROM delivery_attempts WHERE id IN (
        SELECT a.id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE a.started_at < now() - make_interval(days => :days)
          AND d.status IN ('success', 'failed', 'disabled') AND NOT d.manual_pending
        LIMIT :batch_size
        FOR UPDATE OF a SKIP LOCKED)
""")

_PRUNE_EVENTS = text("""
    DELETE FROM events WHERE id IN (
        SELECT e.id FROM events e
        WHERE e.created_at < now() - make_interval(days => :days)
          AND e.fanned_out_at IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM deliveries d
              WHERE d.event_pk = e.id
                AND (d.status IN ('pending', 'retrying') OR d.manual_pending))
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED)
""")


@dataclass(frozen=True)
class PruneReport:
    attempts_deleted: int
    events_deleted: int


def _prune_in_batches(session: Session, statement, params: dict, deadline: float) -> int:
    deleted = 0
    while time.monotonic() < deadline:
        count = session.execute(statement, params).rowcount
        session.commit()
        deleted += count
        if count < params["batch_size"]:
            break
    return deleted


def prune(session: Session, settings: Settings, batch_size: int = BATCH_SIZE,
          max_seconds: float = MAX_SECONDS) -> PruneReport:
    if settings.retention_days == 0:
        return PruneReport(0, 0)
    deadline = time.monotonic() + max_seconds
    params = {"days": settings.retention_days, "batch_size": batch_size}
    attempts = _prune_in_batches(session, _PRUNE_ATTEMPTS, params, deadline)
    events = _prune_in_batches(session, _PRUNE_EVENTS, params, deadline)
    if attempts or events:
        logger.info("retention: pruned %d attempts and %d events older than %d days",
                    attempts, events, settings.retention_days)
    return PruneReport(attempts_deleted=attempts, events_deleted=events)
