"""The web process as the Procfile runs it (bash with its `web:` line, gunicorn on a free
port): requests that wait leave it responsive, and oversized requests are answered in the
API's JSON error shape with a documented status."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import text

from tests.conftest import create_tenant_with_key
from tests.support import processes
from tests.support.api_support import documented_operations
from tests.support.engine_support import delete_broker_keys, new_prefix
from tests.support.helpers import wait_for
from webhooks_api.extensions import db

API = "/api/v1/webhooks"
NOISY_TENANTS = 4
TESTS_PER_TENANT = 8  # 32 waiting calls: more than the web's 2 processes × 12 threads
QUIET_WINDOW_SECONDS = 8
# The web server's limits (webhooks_api.http.gunicorn_conf).
REQUEST_LINE_LIMIT = 8190
HEADER_FIELD_LIMIT = 8190
HEADER_FIELDS_LIMIT = 100


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
    waited = 0
    for tenant_id, responses in answers.items():
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) <= {200, 429}, (tenant_id, statuses)
        # At most 2 waiting per tenant in each of the 2 web processes.
        assert statuses.count(200) <= 4, (tenant_id, statuses)
        waited += statuses.count(200)
        for response in responses:
            if response.status_code == 200:
                assert response.json()["attempt"] is None, response.json()
            else:
                body = response.json()
                assert body["code"] == 429 and body["message"], body
                assert int(response.headers["Retry-After"]) > 0
    # At most 6 waiting in each process; a refused test stored nothing.
    assert 2 <= waited <= 12
    assert _stored_test_deliveries(app) == waited


@pytest.fixture(scope="module")
def served(test_env):
    """The Procfile's web line, with its default processes; yields its base URL."""
    with processes.web(test_env, workers=None) as base:
        yield base


def _assert_json_error(response: requests.Response, code: int, served: str) -> None:
    """The API's error shape, and a status the document lists for that operation."""
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "status", "message"} and body["code"] == code, body
    spec = requests.get(f"{served}/openapi.json", timeout=10).json()
    path = "/" + response.request.path_url.lstrip("/").split("?")[0]
    assert str(code) in documented_operations(spec)[(response.request.method, path)]["responses"]


def test_a_request_line_over_the_limit_is_a_json_414(served, tenant):
    url = f"{served}{API}/subscriptions"
    within = requests.get(url, headers=tenant["headers"], timeout=10,
                          params={"cursor": "x" * (REQUEST_LINE_LIMIT - 200)})
    assert within.status_code == 422 and within.json()["errors"]["cursor"], within.text
    over = requests.get(url, headers=tenant["headers"], timeout=10,
                        params={"cursor": "x" * REQUEST_LINE_LIMIT})
    _assert_json_error(over, 414, served)
    assert str(REQUEST_LINE_LIMIT) in over.json()["message"]


def test_headers_over_the_limits_are_a_json_431(served, tenant):
    url = f"{served}{API}/subscriptions"
    within = requests.get(url, timeout=10, headers={
        **tenant["headers"], "X-Padding": "x" * (HEADER_FIELD_LIMIT - 100)})
    assert within.status_code == 200, within.text
    large_field = requests.get(url, timeout=10, headers={
        **tenant["headers"], "X-Padding": "x" * HEADER_FIELD_LIMIT})
    _assert_json_error(large_field, 431, served)
    many_fields = requests.get(url, timeout=10, headers={
        **tenant["headers"], **{f"X-Padding-{n}": "x" for n in range(HEADER_FIELDS_LIMIT)}})
    _assert_json_error(many_fields, 431, served)


def test_the_web_refuses_to_start_with_no_thread_left_beyond_the_waits(test_env):
    env = {**test_env, "WEB_THREADS": "6", "WEBHOOKS_TEST_EVENT_MAX_WAITING": "6"}
    log_path = processes.VAR / "test-web.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with pytest.raises(AssertionError, match="gunicorn exited"), processes.web(env, workers=1):
        pass
    with open(log_path, "rb") as log:
        log.seek(offset)
        output = log.read().decode(errors="replace")
    assert "WEBHOOKS_TEST_EVENT_MAX_WAITING" in output and "WEB_THREADS" in output, output
