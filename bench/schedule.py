"""`hanging_schedule`: the deliver messages that a delivery to a receiver that keeps hanging
costs over its whole retry schedule, on that schedule run 30 times faster.

Production's schedule (300, 3,600 and 21,600 s, after a 30 s timeout) takes seven hours.
Here a worker of its own (the Procfile's line, a broker prefix of its own) runs with
`WEBHOOKS_RETRY_SCHEDULE=10,120,720`, and the subscriptions have a 1 s timeout. The
window's deferrals, once a receiver has timed out, are computed from the timeout, the
scheduled delays and the schedule's end (webhooks_api/receivers/window.py), and every ratio
between those stays as in production. The claim margin needs no scaling: it only bounds
how long a slot of a killed worker is held, and no worker dies here.

One thing is not scaled. While a receiver has neither answered nor timed out, an attempt
over its window is put off by 1 s, doubled each time, until the oldest attempt in flight is
2 s old (`STALLED_MS`), then by the timeout. In production that is at most three deferrals
(1 s, 2 s, 30 s) before the first 30 s timeout; here the first timeout comes after 1 s, so
at most one. `hanging_sustained` counts those deferrals at full scale, in its messages per
hanging delivery.

The load is the hanging part of `hanging_sustained`: 10 subscriptions, each on a receiver of
its own that never answers, at its rate for its duration. Healthy receivers would not change
what a hanging delivery costs. Every deliver message the worker takes is counted per
delivery, from Celery's task-received events, until every delivery is final.
"""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import text

from bench import stack
from bench.events import ReceivedMessages
from bench.scenarios import SUSTAINED_HANGING, SUSTAINED_TIMEOUT_SECONDS
from bench.workload import publish_paced
from webhooks_api.config import DEFAULT_RETRY_SCHEDULE

SCALE = 30
SCHEDULE = tuple(delay // SCALE for delay in DEFAULT_RETRY_SCHEDULE)
TIMEOUT_SECONDS = SUSTAINED_TIMEOUT_SECONDS // SCALE
FIRST_HOST = 900  # receiver host addresses no other scenario uses

_UNFINISHED = text("""
    SELECT count(*) FROM deliveries
    WHERE tenant_id = :tenant_id AND status IN ('pending', 'retrying')
""")
_OUTCOMES = text("""
    SELECT id, status, attempt_count, last_error FROM deliveries WHERE tenant_id = :tenant_id
""")


def _unfinished(session, tenant_id: str) -> int:
    count = session.execute(_UNFINISHED, {"tenant_id": tenant_id}).scalar_one()
    session.rollback()  # a fresh snapshot on every poll
    return count


def hanging_schedule(bench) -> None:
    tenant = bench.tenant("sched", [bench.receiver.hanging_host_url(f"sched-{index}",
                                                                    FIRST_HOST + index)
                                    for index in range(SUSTAINED_HANGING)],
                          timeout_seconds=TIMEOUT_SECONDS)
    rate, seconds = bench.sizes["sustained_rate"], bench.sizes["sustained_seconds"]
    events = round(rate * seconds)
    started = time.monotonic()
    with stack.worker_of_its_own(
            bench.env, bench.settings.broker_transport_options, "sched",
            worker_env={"WEBHOOKS_RETRY_SCHEDULE": ",".join(map(str, SCHEDULE))}
    ) as (app, worker, publisher), ReceivedMessages(app) as received:
        publish_paced(publisher, tenant, rate, events)
        # The last delivery's schedule ends 850 s after it was made; deferrals and the
        # attempts' own timeouts may push its last attempt later.
        stack.wait_until(lambda: _unfinished(bench.session, tenant.id) == 0,
                         seconds + 3 * sum(SCHEDULE), "every hanging delivery final",
                         interval=2)
    outcomes = bench.session.execute(_OUTCOMES, {"tenant_id": tenant.id}).all()
    bench.session.rollback()
    counts = received.messages_for({row.id for row in outcomes})
    bench.details["hanging_schedule"] = {
        "schedule": SCHEDULE, "timeout_seconds": TIMEOUT_SECONDS, "rate_per_s": rate,
        "seconds": round(time.monotonic() - started, 1), "deliveries": len(outcomes),
        "messages": sum(counts), "messages_distribution": dict(sorted(Counter(counts).items())),
        "attempts_distribution": dict(sorted(Counter(row.attempt_count
                                                     for row in outcomes).items())),
        "ended": dict(Counter(f"{row.status}: {row.last_error}" for row in outcomes)),
        "worker_command": worker.expanded,
    }
    bench.figures["hanging_schedule_messages_per_delivery"] = round(
        sum(counts) / len(counts), 2) if counts else None
    bench.figures["hanging_schedule_messages_max"] = max(counts, default=None)
