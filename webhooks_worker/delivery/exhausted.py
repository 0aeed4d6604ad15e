"""`webhook.delivery.exhausted`: a delivery ended `failed` after the last attempt of its
schedule, so nothing will send it again unless someone re-sends it (docs/HEALTH.md).

Published in the transaction that makes the delivery `failed` (the attempt's record, or a
deferral past the end of the schedule), which only one worker's statement does for a given
delivery: exactly once. Not published
- after a manual attempt (a re-send, replay, recover or test): whoever asked for it sees
  its result, and the delivery's schedule was over or superseded already;
- for a subscription that is no longer active (paused, or disabled by the service): its
  deliveries are `disabled`, to be replayed, and the stop was announced or chosen;
- for a delivery of an operational `webhook.*` event: an `exhausted` event to a failing
  endpoint would end exhausted in turn, and two such subscriptions would send each other
  one for ever. Their failures still count in the subscription's health (`failing` and
  `disabled` fire once per streak).

The data carries ids, the attempt count and the last answer or error, as the delivery
resource names them; never the payload, headers or the URL.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.catalogue import is_operational
from webhooks_api.services.publishing import record_operational_event

logger = logging.getLogger(__name__)

EXHAUSTED_EVENT = "webhook.delivery.exhausted"


def after_final_failure(session: Session, settings: Settings, claim, delivery_id: str, *,
                        trigger: str, subscription_active: bool, attempt_count: int,
                        last_response_status: int | None, last_error: str | None) -> None:
    """Publish `exhausted` for a delivery this transaction made `failed` (`claim`: the
    claimed row), unless one of the rules above says not to; the caller commits."""
    if trigger == "manual" or not subscription_active or is_operational(claim.event_type):
        return
    record_operational_event(session, settings, claim.tenant_id, EXHAUSTED_EVENT,
                             claim.subscription_id, {
                                 "delivery_id": delivery_id, "event_id": claim.event_id,
                                 "event_type": claim.event_type,
                                 "attempt_count": attempt_count,
                                 "last_response_status": last_response_status,
                                 "last_error": last_error})
    logger.info("delivery %s of subscription %s (tenant %s) exhausted its schedule after %d "
                "attempts: %s", delivery_id, claim.subscription_id, claim.tenant_id,
                attempt_count, last_error)
