"""`GET /subscriptions/{id}/stats`: a subscription's outcomes over a window and per time
bucket, computed in PostgreSQL.

- success / failure / pending count the subscription's deliveries created in the window
  (or bucket) by status: `success`; `failed`; `pending` or `retrying`. `disabled` ones
  (never attempted, or stopped) are in none of them.
- success_rate = success / (success + failure), null when both are 0.
- latency_ms: p50, p90 and p99 (percentile_cont) of the duration of its attempts started in
  the window (or bucket), null when there were none.
Buckets are UTC minutes, hours or days (date_trunc); empty buckets are listed with zeros.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from webhooks_api.errors import InvalidInputError
from webhooks_api.services.subscriptions import get_subscription

BUCKETS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
           "day": timedelta(days=1)}
MAX_BUCKETS = 1500
DEFAULT_WINDOW = timedelta(hours=24)

_SERIES = text("""
    WITH buckets AS (
        SELECT generate_series(date_trunc(:unit, :since, 'UTC'),
                               :until - interval '1 microsecond',
                               CAST('1 ' || :unit AS interval)) AS start
    ),
    counts AS (
        SELECT date_trunc(:unit, created_at, 'UTC') AS start,
               count(*) FILTER (WHERE status = 'success') AS success,
               count(*) FILTER (WHERE status = 'failed') AS failure,
               count(*) FILTER (WHERE status IN ('pending', 'retrying')) AS pending
        FROM deliveries
        WHERE subscription_id = :subscription_id
          AND created_at >= :since AND created_at < :until
        GROUP BY 1
    ),
    latencies AS (
        SELECT date_trunc(:unit, a.started_at, 'UTC') AS start,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY a.duration_ms) AS p90,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY a.duration_ms) AS p99
        FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE d.subscription_id = :subscription_id
          AND a.started_at >= :since AND a.started_at < :until
        GROUP BY 1
    )
    SELECT b.start, coalesce(c.success, 0) AS success, coalesce(c.failure, 0) AS failure,
           coalesce(c.pending, 0) AS pending, l.p50, l.p90, l.p99
    FROM buckets b
    LEFT JOIN counts c ON c.start = b.start
    LEFT JOIN latencies l ON l.start = b.start
    ORDER BY b.start
""")

_TOTAL_LATENCY = text("""
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY a.duration_ms) AS p90,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY a.duration_ms) AS p99
    FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
    WHERE d.subscription_id = :subscription_id
      AND a.started_at >= :since AND a.started_at < :until
""")


def _outcomes(success: int, failure: int, pending: int, latency) -> dict:
    finished = success + failure
    return {
        "success": success, "failure": failure, "pending": pending,
        "success_rate": success / finished if finished else None,
        "latency_ms": {name: None if getattr(latency, name) is None
                       else float(getattr(latency, name)) for name in ("p50", "p90", "p99")},
    }


def subscription_stats(session: Session, tenant_id: str, subscription_id: str, *,
                       since: datetime | None = None, until: datetime | None = None,
                       bucket: str = "hour") -> dict:
    subscription = get_subscription(session, tenant_id, subscription_id)
    until = until or session.scalar(select(func.now()))
    since = since or until - DEFAULT_WINDOW
    if until <= since:
        raise InvalidInputError("the window is empty", {"until": ["must be after since"]})
    if (until - since) / BUCKETS[bucket] > MAX_BUCKETS:
        raise InvalidInputError("too many buckets", {
            "bucket": [f"at most {MAX_BUCKETS} buckets; use a larger bucket or a shorter "
                       "window"]})
    params = {"subscription_id": subscription.id, "since": since, "until": until,
              "unit": bucket}
    rows = session.execute(_SERIES, params).all()
    total_latency = session.execute(_TOTAL_LATENCY, params).one()
    session.rollback()  # read-only: end the transaction
    series = [{"start": row.start, **_outcomes(row.success, row.failure, row.pending, row)}
              for row in rows]
    totals = _outcomes(sum(row.success for row in rows), sum(row.failure for row in rows),
                       sum(row.pending for row in rows), total_latency)
    return {"since": since, "until": until, "bucket": bucket, "totals": totals,
            "series": series}
