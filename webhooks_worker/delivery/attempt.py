"""One delivery attempt: claim → sign → POST → record → outcome.

PostgreSQL, not the broker, is the truth. The claim is one conditional UPDATE (right
status, expected attempt number, due, not held by a live claim): a duplicate, early or
stale message claims nothing and sends nothing. The claim commits and the session lets go
of its connection before the HTTP call; the attempt row, the delivery's new state and the
subscription's statistics are then written in one transaction.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from webhooks_api import metrics
from webhooks_api.config import Settings
from webhooks_api.domain.custom_headers import redacted
from webhooks_api.domain.ssrf import HTTPS_REQUIRED, breaks_https_rule
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_api.receivers import rate_limit
from webhooks_api.receivers.circuit import Breaker
from webhooks_api.receivers.window import Window
from webhooks_worker.delivery import exhausted, health, http_client
from webhooks_worker.delivery.backoff import next_delay
from webhooks_worker.delivery.headers import build_headers
from webhooks_worker.delivery.signing import redact_signatures
from webhooks_worker.runtime import observability, prepared, tracing
from webhooks_worker.runtime.prepared import Prepared

logger = logging.getLogger(__name__)

GONE = 410
# A countdown may fire a little before the database's clock says the retry is due.
EARLY_SLACK_SECONDS = 2

_CLAIM = Prepared("webhooks_claim", """
    UPDATE deliveries d
    SET claimed_until = now() + make_interval(secs => s.timeout_seconds + :claim_margin)
    FROM subscriptions s, events e
    WHERE d.id = :delivery_id AND s.id = d.subscription_id AND e.id = d.event_pk
      AND d.status IN ('pending', 'retrying')
      AND d.attempt_count = :attempt_number - 1
      AND (d.claimed_until IS NULL OR d.claimed_until < now())
      AND d.manual_pending = :manual
      AND (:manual OR d.next_retry_at IS NULL
           OR d.next_retry_at <= now() + make_interval(secs => :early_slack))
    RETURNING d.tenant_id, d.subscription_id, d.event_type, d.created_at, e.event_id, e.body,
              e.occurred_at, s.url, s.header_ciphertexts, s.timeout_seconds,
              s.secret_ciphertext, s.max_per_second,
              CASE WHEN s.previous_secret_expires_at > now()
                   THEN s.previous_secret_ciphertext END AS previous_secret_ciphertext
""", {"delivery_id": "text", "attempt_number": "int", "manual": "boolean",
      "claim_margin": "int", "early_slack": "int"})

# A delivery disabled while this attempt was in flight (subscription paused or deleted,
# 410 on a sibling) takes the attempt's outcome when that is final (`success`, `failed`):
# the receiver got what it got. A retry the attempt would have had is not made: the
# delivery stays `disabled` (with the time it stopped), to be replayed.
# The attempt row, the delivery's new state and the subscription's statistics in one
# statement, so one round trip (and still one transaction: a statement is atomic). Nothing
# is written when another worker already recorded this attempt number (no row returned).
# A manual attempt carries the bulk retry job that queued it, if any.
_RECORD_ATTEMPT = Prepared("webhooks_record_attempt", f"""
    WITH finished AS (
        UPDATE deliveries
        SET status = CASE WHEN status = 'disabled' AND :status NOT IN ('success', 'failed')
                          THEN 'disabled' ELSE :status END,
            attempt_count = :attempt_number, claimed_until = NULL,
            manual_pending = false, last_response_status = :response_status,
            last_error = :error,
            next_retry_at = CASE WHEN :retry_in IS NULL OR status = 'disabled' THEN NULL
                                 ELSE now() + make_interval(secs => :retry_in) END,
            completed_at = CASE WHEN status = 'disabled'
                                     AND :status NOT IN ('success', 'failed') THEN completed_at
                                WHEN :status IN ('success', 'failed', 'disabled') THEN now()
                           END,
            updated_at = now()
        WHERE id = :delivery_id AND attempt_count = :attempt_number - 1
          AND status IN ('pending', 'retrying', 'disabled')
        RETURNING id, status, subscription_id, bulk_retry_id),
    attempt AS (
        INSERT INTO delivery_attempts (delivery_id, attempt_number, trigger, started_at,
            duration_ms, request_headers, response_status, response_headers, response_body,
            error_class, error_message, bulk_retry_id)
        SELECT id, :attempt_number, :trigger, :started_at, :duration_ms,
               CAST(:request_headers AS jsonb), :response_status,
               CAST(:response_headers AS jsonb), :response_body, :error_class,
               :error_message, CASE WHEN :trigger = 'manual' THEN bulk_retry_id END
        FROM finished),
    counted AS ({health.COUNT_ATTEMPT})
    SELECT finished.status AS stored_status, counted.*
    FROM finished LEFT JOIN counted ON true
""", {"delivery_id": "text", "attempt_number": "int", "trigger": "text", "status": "text",
      "retry_in": "float8", "error": "text", "started_at": "timestamptz",
      "duration_ms": "int", "request_headers": "text", "response_status": "int",
      "response_headers": "text", "response_body": "text", "error_class": "text",
      "error_message": "text", "succeeded": "boolean", "disable_after": "int"})

# The circuit breaker is open, the rate limit used up or the window full: no attempt now.
# The claim is let go and the same attempt number is due after `delay`, unless that is
# past the end of the delivery's schedule (its creation plus every scheduled delay; NULL:
# no end): then it fails, with the reason.
_DEFER = text("""
    UPDATE deliveries d
    SET claimed_until = NULL,
        status = CASE WHEN t.past_end THEN 'failed' ELSE d.status END,
        next_retry_at = CASE WHEN t.past_end THEN NULL ELSE t.due END,
        last_error = CASE WHEN t.past_end THEN :reason ELSE d.last_error END,
        completed_at = CASE WHEN t.past_end THEN now() END,
        updated_at = now()
    FROM (SELECT id, now() + make_interval(secs => :delay) AS due,
                 coalesce(now() + make_interval(secs => :delay) > created_at
                          + make_interval(secs => CAST(:schedule_seconds AS float)), false)
                 AS past_end
          FROM deliveries WHERE id = :delivery_id) AS t
    WHERE d.id = t.id AND d.attempt_count = :attempt_number - 1
      AND d.status IN ('pending', 'retrying')
    RETURNING d.status, d.last_response_status
""")


@dataclass(frozen=True)
class Outcome:
    """The delivery's state after an attempt; `retry_in` seconds when another is due
    (the same attempt number again when `deferred`: no attempt was made)."""

    status: str
    retry_in: float | None = None
    deferred: bool = False
    # How often this attempt was put off for a full window, with this deferral.
    deferrals: int = 0
    # Flower's (argsrepr, kwargsrepr) for the retry message, built from the claim.
    retry_reprs: tuple[str, str] | None = None

# Pauses before an attempt whose answer is in hand is recorded again after a database
# error: ~1 min in all, within the claim's margin over the request timeout. Left to the
# task's own retry, the claim would still hold the delivery: the retry would claim nothing,
# and the sweep would send the webhook a second time once the claim expired.
RECORD_RETRIES = (0.5, 1, 2, 4, 8, 16, 30)


def decide(result: http_client.HttpResult, attempt_number: int, trigger: str,
           schedule: tuple[int, ...]) -> Outcome:
    """2xx success · 410 disabled · else retry on schedule (never after a manual send)."""
    if result.succeeded:
        return Outcome("success")
    if result.status_code == GONE:
        return Outcome("disabled")
    if trigger == "manual":
        return Outcome("failed")
    retry_after = (result.headers or {}).get("Retry-After")
    delay = next_delay(schedule, attempt_number, result.status_code, retry_after)
    return Outcome("failed") if delay is None else Outcome("retrying", delay)


def attempt_delivery(session: Session, settings: Settings, delivery_id: str,
                     attempt_number: int, trigger: str, deferrals: int = 0) -> Outcome | None:
    """Make attempt `attempt_number` of a delivery; None when this message claims nothing.
    `deferrals`: how often this attempt was already put off for a full window."""
    # Committed by itself, so visible to every other worker at once.
    claim = prepared.run(_CLAIM, {
        "delivery_id": delivery_id, "attempt_number": attempt_number,
        "manual": trigger == "manual", "claim_margin": settings.claim_margin_seconds,
        "early_slack": EARLY_SLACK_SECONDS,
    }).one_or_none()
    if claim is None:
        logger.info("delivery %s attempt %s: nothing to claim (duplicate, stale or early)",
                    delivery_id, attempt_number)
        return None
    if breaks_https_rule(claim.url, settings):
        return refuse_plain_http(session, settings, claim, delivery_id, attempt_number,
                                 trigger)

    breaker = Breaker(settings)
    # Manual attempts (a user's explicit re-send or test) are not held back; their result
    # still counts.
    if trigger != "manual" and not breaker.allow(
            claim.subscription_id, claim.timeout_seconds + settings.claim_margin_seconds):
        return defer(session, settings, claim, delivery_id, attempt_number, trigger,
                     breaker_delay(settings, breaker, claim), "circuit open")
    if over_limit := rate_limit.wait_seconds(settings, claim.subscription_id,
                                             claim.max_per_second):
        # Never failed for it: the limit is the tenant's own choice, not an endpoint fault.
        return defer(session, settings, claim, delivery_id, attempt_number, trigger,
                     over_limit, "rate limit", fail_after_schedule=False)
    window = Window(settings)
    slot = None if trigger == "manual" else window.acquire(
        claim.subscription_id, claim.timeout_seconds, deferrals)
    if isinstance(slot, float):
        return defer(session, settings, claim, delivery_id, attempt_number, trigger, slot,
                     "window full", deferrals=deferrals + 1)

    body = claim.body.encode("utf-8")
    headers = build_headers(claim, delivery_id, attempt_number, settings, body)
    result = None
    try:
        with tracing.post_span(claim, delivery_id, attempt_number, trigger, headers,
                               settings) as span:
            result = http_client.post(
                http_client.delivery_session(settings.allow_private_targets,
                                             settings.egress_proxy), claim.url,
                body, headers, claim.timeout_seconds, settings.ca_bundle)
            span.record(result)
    finally:  # a time limit may cut the POST short (no result): its slot goes back too
        window.release(slot, result)
    return record_patiently(session, partial(
        finish_attempt, settings=settings, claim=claim, breaker=breaker,
        delivery_id=delivery_id, attempt_number=attempt_number, trigger=trigger,
        headers=headers, result=result), delivery_id, attempt_number)


def refuse_plain_http(session: Session, settings: Settings, claim, delivery_id: str,
                      attempt_number: int, trigger: str) -> Outcome | None:
    """WEBHOOKS_REQUIRE_HTTPS at send time: an `http://` subscription (made before the
    setting was turned on) is not contacted. The attempt is recorded as failed with
    `https_required` and no retry, since none would fare better; the circuit breaker is
    left alone, the endpoint did nothing wrong."""
    logger.warning("delivery %s attempt %s: not sent, subscription %s has an http:// URL "
                   "and WEBHOOKS_REQUIRE_HTTPS is on", delivery_id, attempt_number,
                   claim.subscription_id)
    result = http_client.HttpResult(datetime.now(UTC), 0, error_class="https_required",
                             error_message=HTTPS_REQUIRED)
    outcome = record_patiently(session, partial(
        record_attempt, settings=settings, claim=claim, delivery_id=delivery_id,
        attempt_number=attempt_number, trigger=trigger, headers={}, result=result,
        decided=Outcome("failed")), delivery_id, attempt_number)
    observability.attempt_finished(claim, delivery_id, attempt_number, trigger, result,
                                   outcome)
    return outcome


def record_patiently(session: Session, finish: Callable[[Session], Outcome | None],
                     delivery_id: str,
                     attempt_number: int) -> Outcome | None:
    """`finish(session)`, again after each of the `RECORD_RETRIES` pauses while the
    database is unavailable; its error once they are spent."""
    for pause in RECORD_RETRIES:
        try:
            return finish(session)
        except OperationalError as error:
            session.rollback()
            logger.warning("delivery %s attempt %s: the database is unavailable (%s: %s); "
                           "recording again in %g s", delivery_id, attempt_number,
                           type(error).__name__, str(error.orig).splitlines()[0], pause)
            time.sleep(pause)
    return finish(session)


def finish_attempt(session: Session, *, settings: Settings, claim, breaker: Breaker,
                   delivery_id: str, attempt_number: int, trigger: str,
                   headers: dict[str, str], result: http_client.HttpResult) -> Outcome | None:
    """What follows the POST: decide, record, count, and label the next attempt."""
    decided = decide(result, attempt_number, trigger, settings.retry_schedule)
    outcome = record_attempt(session, settings, claim, delivery_id, attempt_number, trigger,
                             headers, result, decided)
    breaker.record(claim.subscription_id, result.succeeded)
    observability.attempt_finished(claim, delivery_id, attempt_number, trigger, result,
                                   outcome)
    if outcome is not None and outcome.retry_in is not None:
        outcome = replace(outcome, retry_reprs=deliver_reprs(
            delivery_id, attempt_number + 1, "automatic", claim.event_type, claim.url))
    return outcome


def breaker_delay(settings: Settings, breaker: Breaker, claim) -> int:
    """Until the breaker may let a delivery through: its open time left, or a probe's
    timeout while another delivery probes."""
    return math.ceil(breaker.open_for_seconds(claim.subscription_id)) or min(
        claim.timeout_seconds, settings.circuit_open_seconds)


def defer(session: Session, settings: Settings, claim, delivery_id: str,
          attempt_number: int, trigger: str, delay: float, reason: str,
          fail_after_schedule: bool = True, deferrals: int = 0) -> Outcome | None:
    """No HTTP call and no attempt used: the same attempt is due after `delay` seconds (or
    the delivery fails with `reason` if that is past the end of its schedule)."""
    deferred = session.execute(_DEFER, {
        "delivery_id": delivery_id, "attempt_number": attempt_number, "delay": delay,
        "schedule_seconds": sum(settings.retry_schedule) if fail_after_schedule else None,
        "reason": reason,
    }).one_or_none()
    status = deferred.status if deferred else None
    if status == "failed":
        # Still pending or retrying a moment ago, so its subscription is active: stopping
        # one disables its open deliveries in the same transaction.
        exhausted.after_final_failure(
            session, settings, claim, delivery_id, trigger=trigger, subscription_active=True,
            attempt_count=attempt_number - 1,
            last_response_status=deferred.last_response_status, last_error=reason)
    session.commit()
    if status is None:
        return None
    if status == "failed":
        logger.warning("delivery %s failed: %s past the end of its schedule", delivery_id,
                       reason)
        return Outcome("failed")
    logger.info("delivery %s attempt %s deferred %.3f s: %s", delivery_id, attempt_number,
                delay, reason)
    metrics.DELIVERIES_DEFERRED.labels(reason=reason).inc()
    return Outcome(status, delay, deferred=True, deferrals=deferrals,
                   retry_reprs=deliver_reprs(delivery_id, attempt_number, trigger,
                                             claim.event_type, claim.url))


def record_attempt(session: Session, settings: Settings, claim, delivery_id: str,
                   attempt_number: int, trigger: str, headers: dict[str, str],
                   result: http_client.HttpResult, decided: Outcome) -> Outcome | None:
    """Write the attempt, the delivery's state and the statistics in one transaction.

    Returns the state stored (a delivery disabled meanwhile stays disabled unless this
    attempt's outcome is final), or None when another worker already recorded this
    attempt number.
    """
    error = (f"{result.error_class}: {result.error_message}" if result.error_class
             else None if result.succeeded else f"HTTP {result.status_code}")
    params = {
        "delivery_id": delivery_id, "attempt_number": attempt_number, "trigger": trigger,
        "status": decided.status, "retry_in": decided.retry_in, "error": error,
        "started_at": result.started_at, "duration_ms": result.duration_ms,
        "request_headers": json.dumps(
            redacted(redact_signatures(headers), claim.header_ciphertexts)),
        "response_status": result.status_code,
        "response_headers": None if result.headers is None else json.dumps(result.headers),
        "response_body": result.body_excerpt,
        "error_class": result.error_class, "error_message": result.error_message,
        "succeeded": result.succeeded,
        "disable_after": settings.disable_after_failing_seconds,
    }
    if result.succeeded:  # the common case: one statement, its own transaction
        row = prepared.run(_RECORD_ATTEMPT, params).one_or_none()
        if row is not None and row.health_stage == "failing":
            health.after_success(session, settings, claim.subscription_id, delivery_id)
    else:  # a failure may disable the subscription, or end the delivery: in one transaction
        row = prepared.execute(session.connection(), _RECORD_ATTEMPT, params).one_or_none()
        if row is not None:
            health.after_failure(session, settings, claim.subscription_id, delivery_id,
                                 gone=decided.status == "disabled", row=row)
        if row is not None and row.stored_status == "failed":
            exhausted.after_final_failure(
                session, settings, claim, delivery_id, trigger=trigger,
                subscription_active=row.subscription_status == "active",
                attempt_count=attempt_number, last_response_status=result.status_code,
                last_error=error)
        session.commit()
    if row is None:  # another worker recorded this attempt: nothing was written
        return None
    stored_status = row.stored_status
    if stored_status != decided.status:
        return Outcome(stored_status)
    return decided
