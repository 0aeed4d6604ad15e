"""A subscription's `max_per_second` holds across two worker processes sharing one broker
(docs/HEALTH.md); deliveries over it wait, none is dropped and none uses an attempt."""

from __future__ import annotations

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    isolated_worker,
    new_prefix,
)
from tests.support.helpers import wait_for

EVENTS = 16
LIMIT = 2


def test_the_rate_limit_holds_across_two_workers(app, client, tenant, receiver, session,
                                                 test_env):
    limited = create_subscription(client, tenant, f"{receiver.base_url}/limited",
                                  ["invoice.created"], max_per_second=LIMIT)
    assert limited["max_per_second"] == LIMIT
    free = create_subscription(client, tenant, f"{receiver.base_url}/free",
                               ["invoice.created"])
    patched = client.patch(f"/api/v1/webhooks/subscriptions/{free['id']}",
                           headers=tenant["headers"], json={"max_per_second": None})
    assert patched.status_code == 200 and patched.json["max_per_second"] is None
    prefix = new_prefix(test_env)
    with isolated_worker(test_env, prefix=prefix, concurrency=2, cleanup=False) as first, \
            isolated_worker(test_env, prefix=prefix, concurrency=2):
        for marker in range(EVENTS):
            first.publish(event_type="invoice.created", event_data={"n": marker},
                          tenant_id=tenant["id"])
        wait_for(lambda: len(receiver.posts("/limited")) == EVENTS, timeout=120,
                 message="every limited delivery")
        wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)),
                 timeout=60, message="every delivery recorded")

    times = sorted(post.at for post in receiver.posts("/limited"))
    # Within any one second, at most twice the limit (fixed windows meet at an edge).
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 2 * LIMIT, busiest
    # 16 at 2 per window need 8 one-second windows: at least 6 s from the end of the first
    # to the start of the last (5.5 s with margin); unlimited they take well under 1 s.
    assert times[-1] - times[0] >= EVENTS / LIMIT - 2.5, times[-1] - times[0]
    free_times = sorted(post.at for post in receiver.posts("/free"))
    assert free_times[-1] - free_times[0] < (times[-1] - times[0]) / 2
    # Deferred, not dropped, and no attempt used by waiting.
    assert all(d.attempt_count == 1 for d in deliveries_of(session))
