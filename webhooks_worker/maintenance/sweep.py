"""The body of `webhooks.sweep`: recover what the broker lost, from PostgreSQL's truth.

- events stored but never fanned out (publish message lost, broker down at publish time);
- deliveries due longer ago than the margin and not claimed (a message never sent, or a
  countdown lost with its worker), and claims that expired (a worker died mid-attempt);
- bulk retry jobs whose chain of chunk messages has not moved for the margin
  (webhooks_worker.maintenance.bulk_retry).

Each found delivery is re-stamped `next_retry_at = now()` in the same statement that
selects it (`FOR UPDATE SKIP LOCKED`), so two sweeps running at once never both take it.
The sweep's last transaction stamps when it finished (webhooks_api.services.sweep_record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.models import Event
from webhooks_api.messaging.enqueue import deliver_message, send_now
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_api.messaging.message import Message
from webhooks_api.services.sweep_record import RECORD_SWEEP
from webhooks_worker.maintenance import bulk_retry
from webhooks_worker.publishing.fanout import fan_out

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000

_TAKE_STALLED = text("""
    UPDATE deliveries d
    SET next_retry_at = now(), claimed_until = NULL
    WHERE d.id IN (
        SELECT id FROM deliveries
        WHERE status IN ('pending', 'retrying')
          AND ((claimed_until IS NULL
                AND next_retry_at < now() - make_interval(secs => :margin))
               OR claimed_until < now())
        ORDER BY next_retry_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.attempt_count, d.manual_pending, d.event_type
""")


def _requeued(row) -> Message:
    trigger = "manual" if row.manual_pending else "swept"
    attempt_number = row.attempt_count + 1
    return deliver_message(row.id, attempt_number, trigger,
                           deliver_reprs(row.id, attempt_number, trigger, row.event_type))


@dataclass(frozen=True)
class SweepReport:
    events_fanned_out: int
    deliveries_requeued: int
    bulk_retries_resumed: int


def sweep(session: Session, settings: Settings) -> SweepReport:
    events = session.scalars(
        select(Event)
        .where(Event.fanned_out_at.is_(None),
               Event.created_at < text("now() - make_interval(secs => :margin)"))
        .order_by(Event.created_at)
        .limit(BATCH_SIZE)
        .with_for_update(skip_locked=True),
        {"margin": settings.sweep_margin_seconds},
    ).all()
    fresh = [message for event in events for message in fan_out(session, event, "swept")]
    session.commit()
    send_now(fresh)
    resumed = bulk_retry.stalled(session, settings)

    stalled = session.execute(
        _TAKE_STALLED, {"margin": settings.sweep_margin_seconds, "limit": BATCH_SIZE}
    ).all()
    session.execute(RECORD_SWEEP)  # for /readyz and /metrics: beat and the sweep are alive
    session.commit()
    send_now(_requeued(row) for row in stalled)
    if events or stalled:
        logger.warning("sweep: fanned out %d stored events, re-enqueued %d deliveries",
                       len(events), len(stalled))
    return SweepReport(events_fanned_out=len(events), deliveries_requeued=len(stalled),
                       bulk_retries_resumed=resumed)
