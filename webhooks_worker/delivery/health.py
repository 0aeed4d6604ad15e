"""A subscription's health after each attempt: its counters, when the service disables
it, and the staged warnings (docs/HEALTH.md).

Runs inside the transaction that records the attempt, on the subscription row that
transaction has locked, so concurrent attempts see one another's counts and each stage
(`failing`, then `disabled`) is published exactly once per failure streak. A success, or a
re-activation through the API, ends the streak and clears the stage; a success that ends a
`failing` streak leaves the stage for `after_success`, which clears it and publishes
`recovered` in one transaction of its own (a successful attempt is recorded by one
autocommitted statement): the conditional UPDATE lets exactly one of several concurrent
successes through, and a worker lost in between leaves the stage for the next success.

Disabling: at once on 410 Gone; otherwise only when every attempt failed for
`disable_after_failing_seconds` (the streak started at `failing_since`), never on one bad
attempt. The warnings are operational events of the tenant, published with the event bus's
service in the same transaction (fan-out after commit); fan-out never sends them to the
subscription they are about.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.services.deliveries import disable_open_deliveries
from webhooks_api.services.publishing import record_operational_event

logger = logging.getLogger(__name__)

FAILING_EVENT = "webhook.subscription.failing"
DISABLED_EVENT = "webhook.subscription.disabled"
RECOVERED_EVENT = "webhook.subscription.recovered"

# The subscription's counters after one attempt (`:succeeded`), as a CTE of the one
# statement that records the attempt (webhooks_worker.delivery.attempt), whose CTE `finished` holds
# the delivery it recorded: nothing is counted when that attempt was already recorded. A
# success keeps the stage `failing` for `after_success` (RETURNING shows it).
COUNT_ATTEMPT = """
    UPDATE subscriptions
    SET success_count = success_count + CASE WHEN :succeeded THEN 1 ELSE 0 END,
        failure_count = failure_count + CASE WHEN :succeeded THEN 0 ELSE 1 END,
        consecutive_failures = CASE WHEN :succeeded THEN 0 ELSE consecutive_failures + 1 END,
        last_success_at = CASE WHEN :succeeded THEN now() ELSE last_success_at END,
        last_failure_at = CASE WHEN :succeeded THEN last_failure_at ELSE now() END,
        failing_since = CASE WHEN :succeeded THEN NULL ELSE coalesce(failing_since, now()) END,
        health_stage = CASE WHEN :succeeded AND health_stage IS DISTINCT FROM 'failing'
                            THEN NULL ELSE health_stage END
    WHERE id = (SELECT subscription_id FROM finished)
    RETURNING tenant_id, url, status AS subscription_status, consecutive_failures,
              failing_since, health_stage,
              :disable_after > 0
              AND failing_since <= now() - make_interval(secs => :disable_after)
              AS failing_too_long
"""

# Locked FOR UPDATE first (an UPDATE alone takes FOR NO KEY UPDATE, which a fan-out's
# FOR KEY SHARE does not wait for), as a pause does: a fan-out that read the subscription
# as active commits before the open deliveries are disabled, a later one sees it disabled
# (webhooks_worker.publishing.fanout).
_DISABLE_SUBSCRIPTION = text("""
    UPDATE subscriptions
    SET status = 'disabled', disabled_reason = :reason, disabled_at = now(),
        last_disabled_at = now(), updated_at = now()
    WHERE id = (SELECT id FROM subscriptions WHERE id = :subscription_id FOR UPDATE)
""")

_SET_STAGE = text("UPDATE subscriptions SET health_stage = :stage WHERE id = :subscription_id")

# Only the transaction that still finds the stage `failing` ends it: a concurrent one waits
# for the row lock, re-reads the row and updates nothing.
_END_FAILING = text("""
    UPDATE subscriptions SET health_stage = NULL
    WHERE id = :subscription_id AND health_stage = 'failing'
    RETURNING tenant_id, url
""")


def after_failure(session: Session, settings: Settings, subscription_id: str,
                  delivery_id: str, gone: bool, row) -> None:
    """Disable and warn as the rules say after a failed attempt was counted (`row`: what
    COUNT_ATTEMPT returned); runs in the recording transaction, the caller commits."""
    reason = None
    if gone:
        reason = f"the endpoint answered 410 Gone (delivery {delivery_id})"
    elif row.failing_too_long and row.subscription_status == "active":
        reason = (f"every attempt failed since {row.failing_since:%Y-%m-%dT%H:%M:%SZ} "
                  f"(more than {settings.disable_after_failing_seconds} s)")
    if reason is not None:
        session.execute(_DISABLE_SUBSCRIPTION,
                        {"subscription_id": subscription_id, "reason": reason})
        disable_open_deliveries(session, subscription_id)
    if reason is not None and row.subscription_status == "active":
        stage = "disabled"
    elif (settings.failing_warning_after
          and row.consecutive_failures >= settings.failing_warning_after
          and row.health_stage is None and row.subscription_status == "active"):
        stage = "failing"
    else:
        return
    if row.health_stage == stage:
        return
    session.execute(_SET_STAGE, {"subscription_id": subscription_id, "stage": stage})
    data = {"url": row.url, "consecutive_failures": row.consecutive_failures,
            "failing_since": row.failing_since}
    if stage == "disabled":
        data["disabled_reason"] = reason
    record_operational_event(session, settings, row.tenant_id,
                             DISABLED_EVENT if stage == "disabled" else FAILING_EVENT,
                             subscription_id, data)
    logger.warning("subscription %s of tenant %s: %s (%d consecutive failed attempts%s)",
                   subscription_id, row.tenant_id,
                   "disabled" if stage == "disabled" else "failing",
                   row.consecutive_failures, f"; {reason}" if reason else "")


def after_success(session: Session, settings: Settings, subscription_id: str,
                  delivery_id: str) -> None:
    """End a `failing` streak that a success just broke (COUNT_ATTEMPT returned the stage
    `failing`): clear the stage and publish `recovered`, once, in one transaction. A
    database error leaves both for the next success of the subscription, logged."""
    try:
        row = session.execute(_END_FAILING, {"subscription_id": subscription_id}).one_or_none()
        if row is not None:
            record_operational_event(session, settings, row.tenant_id, RECOVERED_EVENT,
                                     subscription_id,
                                     {"url": row.url, "delivery_id": delivery_id})
        session.commit()
    except OperationalError as error:
        session.rollback()
        logger.warning("subscription %s: recovered by delivery %s, not recorded yet (the "
                       "database is unavailable: %s); the next success records it",
                       subscription_id, delivery_id, type(error).__name__)
        return
    if row is not None:
        logger.info("subscription %s of tenant %s: recovered (delivery %s succeeded)",
                    subscription_id, row.tenant_id, delivery_id)
