"""The web process as the Procfile runs it (bash with its `web:` line, gunicorn on a free
port): requests that wait leave it responsive, and oversized requests are answered in the
API's JSON error shape with a documented status."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import text

from tests import processes
from tests.conftest import create_tenant_with_key
from tests.engine_support import delete_broker_keys, new_prefix
from tests.helpers import wait_for
from webhooks_api.extensions import db

API = "/api/v1/webhooks"
NOISY_TENANTS = 4
TESTS_PER_TENANT = 8  # 32 waiting calls: more than the web's 2 processes × 12 threads
QUIET_WINDOW_SECONDS = 8


def _stored_test_deliveries(app) -> int:
    with app.app_context():
        count = db.session.scalar(text(
            "SELECT count(*) FROM deliveries WHERE event_type = 'webhook.test'"))
        db.session.rollback()
        return count


@pytest.fixture
def unconsumed_env(test_env):
    """The run's settings on a broker prefix no worker consumes: every test event waits
    its whole bound (15 s with a 5 s subscription timeout)."""
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env)}
    yield env
    delete_broker_keys(env)


def test_waiting_tests_of_many_tenants_leave_the_api_responsive(app, runner, unconsumed_env):
    noisy = [create_tenant_with_key(runner) for _ in range(NOISY_TENANTS)]
    quiet = create_tenant_with_key(runner)
    with processes.web(unconsumed_env, workers=None) as base:
        subscription_ids = {}
        for tenant in [*noisy, quiet]:
            created = requests.post(f"{base}{API}/subscriptions", headers=tenant["headers"],
                                    timeout=10, json={"url": "https://example.com/hook",
                                                      "event_types": ["*"],
                                                      "timeout_seconds": 5})
            assert created.status_code == 201, created.text
            subscription_ids[tenant["id"]] = created.json()["id"]

        answers: dict[str, list[requests.Response]] = {t["id"]: [] for t in noisy}

        def send_test(tenant: dict) -> None:
            answers[tenant["id"]].append(requests.post(
                f"{base}{API}/subscriptions/{subscription_ids[tenant['id']]}/test",
                headers=tenant["headers"], timeout=120))

        callers = [threading.Thread(target=send_test, args=(tenant,))
                   for tenant in noisy for _ in range(TESTS_PER_TENANT)]
        for caller in callers:
            caller.start()
        # As many tests waiting as the web has processes, at least: each would hold one.
        wait_for(lambda: _stored_test_deliveries(app) >= 2, timeout=30,
                 message="test events to wait for their attempt")

        slowest = 0.0
        session = requests.Session()
        window_ends = time.monotonic() + QUIET_WINDOW_SECONDS
        while time.monotonic() < window_ends:
            started = time.monotonic()
            try:
                listed = session.get(f"{base}{API}/subscriptions", headers=quiet["headers"],
                                     timeout=5)
                assert listed.status_code == 200, listed.text
                slowest = max(slowest, time.monotonic() - started)
            except requests.Timeout:
                slowest = max(slowest, time.monotonic() - started)
                break
            time.sleep(0.1)
        assert slowest < 1.0, f"an ordinary request took {slowest:.1f} s"

        for caller in callers:
            caller.join(150)
    for tenant_id, responses in answers.items():
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) <= {200, 429}, (tenant_id, statuses)
        # At most 2 waiting per tenant in each of the 2 web processes.
        assert 1 <= statuses.count(200) <= 4, (tenant_id, statuses)
        for response in responses:
            if response.status_code == 200:
                assert response.json()["attempt"] is None, response.json()
            else:
                body = response.json()
                assert body["code"] == 429 and body["message"], body
                assert int(response.headers["Retry-After"]) > 0
    assert _stored_test_deliveries(app) == sum(
        [response.status_code for response in responses].count(200)
        for responses in answers.values())
