"""`POST /subscriptions/{id}/test`: a `webhook.test` event to one subscription, now, and the
attempt's result (GitHub's ping).

The API never imports the worker (STYLE.md), so the attempt is made by a worker like any
other: the event is stored already fanned out (no other subscription gets it), one delivery
is inserted for this subscription with a manual attempt queued on the fresh-traffic queue,
and the request waits for the attempt row, at most the subscription's timeout plus a
margin and at most WEBHOOKS_TEST_EVENT_WAIT_SECONDS. If no worker made it by then, the
answer carries `attempt: null` and the delivery id to look at later. The test works on a
paused or disabled subscription too: checking an endpoint is what one does before
re-activating it. The wait holds a thread of the web process, so how many tests wait at
once is bounded (ping_slots): past it, 429 and nothing stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.ids import new_id
from webhooks_api.domain.models import Delivery, DeliveryAttempt, Event, Subscription
from webhooks_api.messaging.enqueue import deliver_message, send_after_commit
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_api.services.events import store_event
from webhooks_api.services.ping_slots import waiting_slot
from webhooks_api.services.subscriptions import get_subscription

TEST_EVENT = "webhook.test"
# Time for a worker to take the message, beyond the request's own timeout.
WAIT_MARGIN_SECONDS = 10
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class PingResult:
    delivery_id: str
    event_id: str
    status: str
    attempt: DeliveryAttempt | None


def send_test(session: Session, settings: Settings, tenant_id: str,
              subscription_id: str) -> PingResult:
    subscription = get_subscription(session, tenant_id, subscription_id)
    with waiting_slot(tenant_id, settings.test_event_max_waiting,
                      settings.test_event_max_waiting_per_tenant):
        return _send_and_wait(session, settings, tenant_id, subscription)


def _send_and_wait(session: Session, settings: Settings, tenant_id: str,
                   subscription: Subscription) -> PingResult:
    event = store_event(session, settings, tenant_id, TEST_EVENT, {
        "subscription_id": subscription.id,
        "message": "A test event sent on request to check this endpoint.",
    }).event
    session.execute(update(Event).where(Event.id == event.id)
                    .values(fanned_out_at=func.now()))
    delivery_id = new_id("dlv")
    session.add(Delivery(id=delivery_id, event_pk=event.id, subscription_id=subscription.id,
                         tenant_id=tenant_id, event_type=TEST_EVENT, status="pending",
                         manual_pending=True, next_retry_at=func.now()))
    send_after_commit(session, [deliver_message(
        delivery_id, 1, "manual",
        deliver_reprs(delivery_id, 1, "manual", TEST_EVENT, subscription.url))])
    timeout = min(subscription.timeout_seconds + WAIT_MARGIN_SECONDS,
                  settings.test_event_wait_seconds)
    session.commit()
    return _wait_for_attempt(session, delivery_id, event.event_id, timeout)


def _wait_for_attempt(session: Session, delivery_id: str, event_id: str,
                      timeout: float) -> PingResult:
    deadline = time.monotonic() + timeout
    while True:
        attempt = session.scalar(select(DeliveryAttempt)
                                 .where(DeliveryAttempt.delivery_id == delivery_id))
        status = session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
        if attempt is not None:
            session.expunge(attempt)  # keeps its loaded fields past the rollback
        session.rollback()  # a fresh snapshot for the next look
        if attempt is not None or time.monotonic() > deadline:
            return PingResult(delivery_id, event_id, status, attempt)
        time.sleep(POLL_SECONDS)
