"""When the next automatic attempt is due; pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_AFTER_STATUSES = (429, 503)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def next_delay(schedule: tuple[int, ...], attempts_made: int, status_code: int | None = None,
               retry_after: str | None = None) -> int | None:
    """Countdown before the next attempt, or None when the schedule is used up.

    After attempt n (1-based) the delay is schedule[n-1]. A 429 or 503 with Retry-After
    waits that long instead, clamped between the scheduled delay and twice it.
    """
    if attempts_made > len(schedule):
        return None
    scheduled = schedule[attempts_made - 1]
    if status_code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return int(min(max(asked, scheduled), 2 * scheduled))
    return scheduled
