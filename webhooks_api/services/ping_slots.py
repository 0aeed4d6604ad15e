"""How many `POST /subscriptions/{id}/test` requests of this web process wait at once, in
all and per tenant.

Each waiting request holds one of the process's gunicorn threads for up to
WEBHOOKS_TEST_EVENT_WAIT_SECONDS, and polls PostgreSQL while it waits. Past the bound the
request is refused at once with 429, before anything is stored, so one tenant's tests (or
all tenants' together) never take every thread: the process keeps more threads than the
bound in all (webhooks_api.http.gunicorn_conf refuses to start otherwise), and those serve
every other request (docs/decisions/0013-test-event-waits.md). The count is per process
because the threads and the connection pool it protects are.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from webhooks_api.errors import TooManyRequestsError

# A waiting test answers within the wait's bound, most far sooner: try again after a few
# seconds rather than after the longest wait.
RETRY_AFTER_SECONDS = 5

_lock = threading.Lock()
_waiting_by_tenant: Counter[str] = Counter()


@contextmanager
def waiting_slot(tenant_id: str, max_waiting: int, max_waiting_per_tenant: int) -> Iterator[None]:
    """Hold one of the process's waiting slots for the block; TooManyRequestsError if the
    tenant's or the process's are all taken."""
    with _lock:
        if _waiting_by_tenant[tenant_id] >= max_waiting_per_tenant:
            raise TooManyRequestsError(
                f"{max_waiting_per_tenant} test events of this tenant are already waiting "
                "for their attempt; retry when one has answered", RETRY_AFTER_SECONDS)
        if _waiting_by_tenant.total() >= max_waiting:
            raise TooManyRequestsError(
                "too many test events are waiting for their attempt; retry shortly",
                RETRY_AFTER_SECONDS)
        _waiting_by_tenant[tenant_id] += 1
    try:
        yield
    finally:
        with _lock:
            _waiting_by_tenant[tenant_id] -= 1
            if not _waiting_by_tenant[tenant_id]:
                del _waiting_by_tenant[tenant_id]
