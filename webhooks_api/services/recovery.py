"""Getting a subscription's undelivered events through after an outage (docs/HEALTH.md).

Both use the manual re-send of `POST /deliveries/{id}/retry` (one immediate attempt with
trigger `manual`, no automatic schedule after it), on many deliveries at once, oldest first,
through the retry queue so that a large replay never delays first attempts.

- replay: every delivery never delivered (`disabled` or `failed`) that was created, or
  ended, at or after `since` (default: when the subscription last stopped receiving, i.e.
  was disabled or paused). Those disabled at that moment were created before it, hence
  "or ended".
- recover: every `failed` delivery created in [since, until) (until: now); a longer window
  than 14 days is cut to its last 14 days, as far back as Svix recovers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from webhooks_api.domain.models import Delivery
from webhooks_api.errors import ConflictError, InvalidInputError
from webhooks_api.messaging.names import RETRY_QUEUE
from webhooks_api.services.deliveries import lock_receiving_subscription, queue_manual_attempts
from webhooks_api.services.subscriptions import get_subscription

logger = logging.getLogger(__name__)

RECOVER_MAX_WINDOW = timedelta(days=14)
UNDELIVERED_STATUSES = ("disabled", "failed")


@dataclass(frozen=True)
class Resent:
    delivery_ids: list[str]

    @property
    def count(self) -> int:
        return len(self.delivery_ids)


def _resend(session: Session, tenant_id: str, subscription_id: str, what: str,
            *conditions) -> Resent:
    subscription = get_subscription(session, tenant_id, subscription_id)
    lock_receiving_subscription(session, subscription.id)
    selected = select(Delivery.id).where(Delivery.subscription_id == subscription.id,
                                         *conditions)
    delivery_ids = queue_manual_attempts(session, selected, queue=RETRY_QUEUE)
    session.commit()
    logger.info("subscription %s of tenant %s: %s re-sends %d deliveries", subscription.id,
                tenant_id, what, len(delivery_ids))
    return Resent(delivery_ids)


def replay(session: Session, tenant_id: str, subscription_id: str,
           since: datetime | None = None) -> Resent:
    """Re-send what was never delivered since `since` (default: when it last stopped)."""
    if since is None:
        since = get_subscription(session, tenant_id, subscription_id).last_disabled_at
        if since is None:
            raise ConflictError(f"subscription {subscription_id} was never disabled or "
                                "paused; give `since`")
    return _resend(session, tenant_id, subscription_id, "replay",
                   Delivery.status.in_(UNDELIVERED_STATUSES),
                   or_(Delivery.created_at >= since,
                       and_(Delivery.completed_at.is_not(None),
                            Delivery.completed_at >= since)))


def recover(session: Session, tenant_id: str, subscription_id: str, since: datetime,
            until: datetime | None = None) -> Resent:
    """Re-send every `failed` delivery created in [since, until), at most 14 days."""
    now = session.scalar(select(func.now()))
    until = until or now
    if until <= since:
        raise InvalidInputError("the window is empty", {"until": ["must be after since"]})
    since = max(since, until - RECOVER_MAX_WINDOW)
    return _resend(session, tenant_id, subscription_id, "recover",
                   Delivery.status == "failed", Delivery.created_at >= since,
                   Delivery.created_at < until)
