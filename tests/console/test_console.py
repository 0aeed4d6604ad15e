"""The delivery console (/console) in headless Chromium against a running stack: gunicorn
serving the app, the session's Celery worker and a receiver on 127.0.0.1.

Every step is done as a user does it, on the page; the API is called directly only to
publish (what the tenant's own platform does) and to check what the page changed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.console_support import Api, ConsolePage
from tests.support.engine_support import isolated_worker
from tests.support.helpers import wait_for
from tests.support.processes import web
from tests.support.receiver import Reply

KEY_STORAGE = "webhooks.apiKey"
PAGE_SIZE = 50  # the console's page of deliveries


@pytest.fixture
def page(browser, base_url):
    """The console opened in a tab that holds no key and no earlier log."""
    console = ConsolePage(browser, base_url).open()
    browser.execute_script("sessionStorage.clear()")
    console.open()
    browser.get_log("browser")
    yield console
    assert console.page_errors() == []


def test_page_and_assets_are_served_from_the_package(base_url):
    page = requests.get(f"{base_url}/console", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    for asset, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        assert f"/console/assets/{asset}" in page.text
        answer = requests.get(f"{base_url}/console/assets/{asset}", timeout=10)
        assert answer.status_code == 200 and kind in answer.headers["Content-Type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_sign_in_keeps_the_key_in_this_tab_only(page, tenant):
    page.sign_in("not-a-key")
    page.wait_text("#sign-in-error", "unknown or revoked")
    assert not page.visible("#console")

    page.sign_in(tenant["api_key"])
    page.wait_text("#subscriptions-empty", "No subscriptions yet.")
    page.wait_text("#deliveries-empty", "No deliveries match.")
    assert page.session_storage(KEY_STORAGE) == tenant["api_key"]
    assert page.driver.get_cookies() == []
    assert tenant["api_key"] not in page.driver.current_url
    assert page.element("#api-key").get_attribute("value") == ""

    page.open()  # a reload in the same tab stays signed in
    page.wait_text("#subscriptions-empty", "No subscriptions yet.")

    page.press("Sign out", "header")
    page.wait_until(lambda: page.visible("#sign-in-form") and not page.visible("#console"),
                    "the sign-in form")
    assert page.session_storage(KEY_STORAGE) is None


def test_create_publish_open_attempts_and_retry(page, tenant, tenant_api, receiver, worker):
    page.sign_in(tenant["api_key"])
    page.wait_text("#subscriptions-empty", "No subscriptions yet.")
    page.press("New subscription")
    page.fill("#subscription-url", receiver.url)
    page.fill("#subscription-events", "invoice.*")
    page.fill("#subscription-description", "Billing endpoint")
    page.press("Save", "#subscription-form")

    page.wait_text("#secret", "shown only now")
    secret = page.text("#secret-value")
    subscription_id = page.text("#secret-subscription")
    assert secret.startswith("whsec_")
    row = page.subscription_row(subscription_id)
    page.wait_text(row, receiver.url)
    assert "Billing endpoint" in page.text(row) and "active" in page.text(f"{row} .state")
    stored = tenant_api.subscription(subscription_id)
    assert stored["url"] == receiver.url and stored["event_types"] == ["invoice.*"]
    page.press("Done", "#secret")
    assert not page.visible("#secret")

    event_id = tenant_api.publish("invoice.created", {"invoice_id": "inv_console"})
    wait_for(lambda: len(receiver.posts()) == 1, timeout=30, message="the delivery")
    assert json.loads(receiver.posts()[0].body)["id"] == event_id

    def delivered_row():
        rows = page.apply_filters()
        return len(rows) == 1 and "success" in rows[0] and rows[0]
    cells = page.wait_until(delivered_row, "the delivery to show as success")
    assert cells[1] == "invoice.created" and cells[2] == receiver.url and cells[5] == "HTTP 200"

    page.press("Attempts", "#delivery-table")
    page.wait_text("#delivery-detail", "Attempt 1 · automatic")
    detail = page.text("#delivery-detail")
    assert event_id in detail and "success" in detail
    attempt = '#attempts [data-attempt="1"]'
    assert page.text(f"{attempt} .response-status") == "HTTP 200"
    assert page.text(f"{attempt} pre.body") == "ok"
    page.element(f"{attempt} details summary").click()  # request headers
    page.wait_text(f"{attempt} table.headers", "X-Webhook-Signature")
    headers = page.text(f"{attempt} table.headers")
    assert "X-Webhook-Signature [redacted]" in headers and secret not in headers
    assert "X-Webhook-Event-Id " + event_id in headers
    page.element(f"{attempt} details:nth-of-type(2) summary").click()  # response headers
    page.wait_text(f"{attempt} details:nth-of-type(2) table.headers", "Content-Length 2")
    assert page.text(f"{attempt} dd:nth-of-type(2)").endswith(" ms")  # duration

    page.press("Retry now", "#delivery-detail")
    page.wait_text("#notice", "queued")
    page.wait_text("#attempts", "Attempt 2 · manual")
    assert len(receiver.posts()) == 2
    assert page.text('#attempts [data-attempt="2"] .response-status') == "HTTP 200"
    page.wait_until(lambda: page.delivery_rows()[0][4] == "2", "two attempts in the log")
    page.element('#attempts [data-attempt="2"] details summary').click()
    shot = page.screenshot("console.png")
    assert shot.stat().st_size > 10_000


def test_edit_disable_enable_and_rotate(page, tenant, tenant_api, receiver):
    created = tenant_api.subscribe(receiver.url, ["invoice.*"], description="before")
    row = page.subscription_row(created["id"])
    page.sign_in(tenant["api_key"])
    page.wait_text(row, "before")

    page.press("Edit", row)
    assert page.element("#subscription-url").get_attribute("value") == receiver.url
    page.fill("#subscription-description", "after")
    page.fill("#subscription-events", "invoice.*, payment.failed")
    page.fill("#subscription-timeout", "12")
    page.fill("#subscription-filter", '{"path": "data.amount", "gt": {"n": 1}}')
    page.press("Save", "#subscription-form")
    page.wait_text("#subscription-form-error", "filter.gt")  # the API names the place
    page.fill("#subscription-filter", '{"path": "data.amount", "gte": 10000}')
    page.press("Save", "#subscription-form")
    page.wait_text(row, "after")
    assert "invoice.*, payment.failed" in page.text(row)
    shown = page.text(f"{row} small.filter")  # keys in the order PostgreSQL keeps them
    assert shown.startswith("filter {") and '"path":"data.amount"' in shown
    assert '"gte":10000' in shown
    stored = tenant_api.subscription(created["id"])
    assert stored["description"] == "after" and stored["timeout_seconds"] == 12
    assert stored["event_types"] == ["invoice.*", "payment.failed"]
    assert stored["filter"] == {"path": "data.amount", "gte": 10000}
    page.press("Edit", row)  # the form shows the filter; emptied, it is removed
    assert '"gte": 10000' in page.element("#subscription-filter").get_attribute("value")
    page.fill("#subscription-filter", "")
    page.press("Save", "#subscription-form")
    page.wait_until(lambda: not page.visible(f"{row} small.filter"),
                    "the filter gone from the row")
    assert tenant_api.subscription(created["id"])["filter"] is None

    page.press("Disable", row)
    page.wait_text(f"{row} .state", "paused")
    assert tenant_api.subscription(created["id"])["is_active"] is False
    page.press("Enable", row)
    page.wait_text(f"{row} .state", "active")
    assert tenant_api.subscription(created["id"])["is_active"] is True

    page.press("Rotate secret", row)
    page.wait_text("#secret", created["id"])
    rotated = page.text("#secret-value")
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    assert tenant_api.subscription(created["id"])["previous_secret_expires_at"] is not None

    page.press("New subscription")
    page.fill("#subscription-url", "ftp://example.com/hook")
    page.fill("#subscription-events", "invoice.*")
    page.press("Save", "#subscription-form")
    page.wait_text("#subscription-form-error", "url")
    assert len(tenant_api.call("GET", "/subscriptions", 200)["items"]) == 1


def test_states_and_delivery_filters(page, tenant, tenant_api, receiver, worker):
    """A failing endpoint, one disabled by a 410 (and why), and the log's filters and
    search box."""
    replies = {"/ok": Reply(), "/fail": Reply(status=500), "/gone": Reply(status=410),
               "/drop": Reply(raw=lambda stream: None)}  # closed without an answer
    receiver.respond = lambda request: replies[request.path]
    healthy = tenant_api.subscribe(f"{receiver.base_url}/ok", ["invoice.*"])
    failing = tenant_api.subscribe(f"{receiver.base_url}/fail", ["payment.*"])
    gone = tenant_api.subscribe(f"{receiver.base_url}/gone", ["payment.*"])
    dropping = tenant_api.subscribe(f"{receiver.base_url}/drop", ["payment.*"])
    invoice_event = tenant_api.publish("invoice.created", {"invoice_id": "inv_1"})
    tenant_api.publish("payment.failed", {"payment_id": "pay_1"})
    # Every delivery is final: the failing ones after the (short) retry schedule.
    wait_for(lambda: sorted(d["status"] for d in tenant_api.deliveries()) == [
        "disabled", "failed", "failed", "success"], timeout=60, interval=0.5,
        message="four final deliveries")

    page.sign_in(tenant["api_key"])
    page.wait_text(f"{page.subscription_row(gone['id'])} .state", "410 Gone")
    assert page.text(f"{page.subscription_row(gone['id'])} .badge") == "disabled"
    failing_state = page.text(f"{page.subscription_row(failing['id'])} .state")
    assert failing_state.startswith("failing") and "4 failed attempts in a row" in failing_state
    assert page.text(f"{page.subscription_row(healthy['id'])} .state") == "active"

    def shown(**filters: str) -> list[tuple[str, str]]:
        """(event type, status) of each row after applying `filters` (field: value)."""
        page.driver.execute_script("document.getElementById('delivery-filters').reset()")
        for name, value in filters.items():
            field = f"#filter-{name.replace('_', '-')}"
            if name in ("status", "subscription"):
                page.select(field, value)
            elif name in ("since", "until"):
                page.set_value(field, value)
            else:
                page.fill(field, value)
        return sorted((row[1], row[3]) for row in page.apply_filters())

    everything = [("invoice.created", "success"), ("payment.failed", "disabled"),
                  ("payment.failed", "failed"), ("payment.failed", "failed")]
    assert shown() == everything
    assert shown(status="failed") == [("payment.failed", "failed")] * 2
    assert shown(event_type="invoice.created") == [("invoice.created", "success")]
    assert shown(subscription=gone["id"]) == [("payment.failed", "disabled")]
    hour_ago = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert shown(since=hour_ago) == everything
    assert shown(until=hour_ago) == []
    page.wait_text("#deliveries-empty", "No deliveries match.")

    # The search box: payload terms, the last response's status (code or class), event id.
    assert shown(search="data.payment_id=pay_1") == everything[1:]
    assert shown(search="response_status=5xx") == [("payment.failed", "failed")]
    assert shown(search="data.payment_id=pay_1  response_status=410") == \
        [("payment.failed", "disabled")]
    assert shown(search=f'event_id={invoice_event} data.invoice_id="inv_1"',
                 status="success") == [("invoice.created", "success")]
    assert shown(search="data.invoice_id=inv_1", status="failed") == []
    shown(search="response_status=6xx")  # refused by the API, which names the parameter
    page.wait_text("#deliveries-error", "response_status")
    shown(search="colour=red")  # refused by the page: not a search term
    page.wait_text("#deliveries-error", '"colour" is not searchable')

    assert shown(subscription=dropping["id"]) == [("payment.failed", "failed")]
    page.press("Attempts", "#delivery-table")
    page.wait_text("#attempts", "Attempt 4 · automatic")
    for number in range(1, 5):
        attempt = f'#attempts [data-attempt="{number}"]'
        assert page.text(f"{attempt} .response-status") == "no response"
        assert page.text(f"{attempt} .attempt-error").startswith("connection_error")
    page.press("Clear", "#delivery-filters")
    page.wait_until(lambda: len(page.delivery_rows()) == 4, "the whole log again")
    page.screenshot("console-states.png")


def test_log_pages_with_load_more(page, tenant, tenant_api, receiver, worker):
    tenant_api.subscribe(receiver.url, ["invoice.*"])
    for number in range(PAGE_SIZE + 3):
        tenant_api.publish("invoice.created", {"invoice_id": f"inv_{number}"})
    wait_for(lambda: len(receiver.posts()) == PAGE_SIZE + 3, timeout=60,
             message="every delivery")

    page.sign_in(tenant["api_key"])
    page.wait_until(lambda: len(page.delivery_rows()) == PAGE_SIZE, "the first page")
    page.press("Load more", "#deliveries")
    page.wait_until(lambda: len(page.delivery_rows()) == PAGE_SIZE + 3, "the second page")
    assert not page.visible("#more-deliveries")
    shown_ids = page.driver.execute_script(
        "return [...document.querySelectorAll('#delivery-table tbody tr')]"
        ".map((row) => row.dataset.id)")
    listed = tenant_api.call("GET", "/deliveries", 200, params={"limit": 250})["items"]
    assert shown_ids == [delivery["id"] for delivery in listed]  # newest first, no repeats


def _local(moment: datetime) -> str:
    """A time as the page's datetime-local fields take it (the browser's own zone)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def _wait_for_statuses(tenant_api: Api, *statuses: str) -> None:
    """Until the tenant's deliveries have exactly these statuses (in any order)."""
    wait_for(lambda: sorted(d["status"] for d in tenant_api.deliveries()) == sorted(statuses),
             timeout=60, interval=0.5, message=f"deliveries {', '.join(statuses)}")


def test_success_sparkline_and_health_charts(page, tenant, tenant_api, receiver, worker):
    """The 24-hour success rate of each subscription (stats by hour) and the health panel's
    deliveries per minute by outcome and latency percentiles (stats by minute)."""
    replies = {"/ok": Reply(), "/fail": Reply(status=500)}
    receiver.respond = lambda request: replies[request.path]
    mixed = tenant_api.subscribe(f"{receiver.base_url}/ok", ["invoice.*"])
    failing = tenant_api.subscribe(f"{receiver.base_url}/fail", ["payment.*"])
    idle = tenant_api.subscribe(f"{receiver.base_url}/ok", ["customer.*"])
    for number in range(3):
        tenant_api.publish("invoice.created", {"invoice_id": f"inv_{number}"})
    tenant_api.publish("payment.failed", {"payment_id": "pay_1"})
    _wait_for_statuses(tenant_api, "failed", "success", "success", "success")
    replies["/ok"] = Reply(status=500)
    tenant_api.publish("invoice.created", {"invoice_id": "inv_failing"})
    _wait_for_statuses(tenant_api, "failed", "failed", "success", "success", "success")

    page.sign_in(tenant["api_key"])
    sparkline = f"{page.subscription_row(mixed['id'])} .sparkline"
    page.wait_text(f"{sparkline} .rate", "75%")  # 3 of 4 finished deliveries succeeded
    assert page.element(f"{sparkline} svg").get_attribute("aria-label") == "success rate 75%"
    assert page.element(f"{sparkline} polyline, {sparkline} circle") is not None
    page.wait_text(f"{page.subscription_row(failing['id'])} .sparkline .rate", "0%")
    page.wait_text(f"{page.subscription_row(idle['id'])} .sparkline .rate", "no deliveries")
    stats = tenant_api.call("GET", f"/subscriptions/{mixed['id']}/stats", 200,
                            params={"bucket": "hour"})
    assert stats["totals"]["success_rate"] == 0.75

    page.press("Health", page.subscription_row(mixed["id"]))
    page.wait_text("#health-subscription", mixed["id"])
    bars = "#outcome-chart svg rect"
    page.wait_until(lambda: page.driver.find_elements("css selector", bars), "the outcome bars")
    outcomes = page.driver.execute_script(
        "const sum = {};"
        "for (const bar of document.querySelectorAll(arguments[0])) {"
        "  const [, n, outcome] = bar.textContent.match(/: (\\d+) (\\w+)$/);"
        "  sum[outcome] = (sum[outcome] || 0) + Number(n); }"
        "return sum;", bars)
    assert outcomes == {"success": 3, "failure": 1}
    assert page.element("#outcome-chart svg").get_attribute("aria-label") == \
        "deliveries per minute by outcome"
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    stats = tenant_api.call("GET", f"/subscriptions/{mixed['id']}/stats", 200,
                            params={"bucket": "minute", "since": hour_ago})
    for percentile in ("p50", "p90", "p99"):
        measured = sum((bucket["latency_ms"] or {}).get(percentile) is not None
                       for bucket in stats["series"])
        dots = page.driver.find_elements("css selector", f"#latency-chart circle.dot.{percentile}")
        assert len(dots) == measured > 0, percentile  # one dot per minute measured
        line = page.element(f"#latency-chart path.{percentile}").get_attribute("d")
        assert line.startswith("M") and line != "M0,0", percentile
    assert "ms" in page.text("#latency-chart")
    assert "p50" in page.text("#latency-chart .legend")
    page.screenshot("console-health.png")


def test_send_test_shows_the_result_and_opens_the_delivery(page, tenant, tenant_api, receiver,
                                                          worker):
    created = tenant_api.subscribe(receiver.url, ["invoice.*"])
    page.sign_in(tenant["api_key"])
    row = page.subscription_row(created["id"])
    page.wait_text(row, receiver.url)

    page.press("Send test", row)
    page.wait_text("#notice", "answered 200")
    wait_for(lambda: len(receiver.posts()) == 1, timeout=30, message="the test event")
    sent = json.loads(receiver.posts()[0].body)
    assert sent["type"] == "webhook.test"
    assert page.text("#notice") == f"Test event {sent['id']}: success, answered 200."
    page.wait_text("#delivery-detail", "Attempt 1 · manual")
    assert f"webhook.test (event {sent['id']})" in page.text("#detail-summary")
    assert page.text('#attempts [data-attempt="1"] .response-status') == "HTTP 200"
    page.wait_until(lambda: [row[1] for row in page.delivery_rows()] == ["webhook.test"],
                    "the test delivery in the log")


def test_recover_a_window_resends_the_failed_deliveries(page, tenant, tenant_api, receiver,
                                                       worker):
    replies = {"status": 500}
    receiver.respond = lambda request: Reply(status=replies["status"])
    created = tenant_api.subscribe(receiver.url, ["invoice.*"])
    window_start = datetime.now() - timedelta(minutes=1)
    event_ids = {tenant_api.publish("invoice.created", {"invoice_id": f"inv_{number}"})
                 for number in range(2)}
    _wait_for_statuses(tenant_api, "failed", "failed")
    failed_posts = len(receiver.posts())
    replies["status"] = 200

    page.sign_in(tenant["api_key"])
    row = page.subscription_row(created["id"])
    page.wait_text(f"{row} .state", "failing")
    page.press("Health", row)
    page.set_value("#recover-since", _local(window_start))
    page.set_value("#recover-until", _local(datetime.now() + timedelta(minutes=2)))
    page.press("Recover window", "#subscription-health")
    page.wait_text("#resend-result", "2 deliveries queued.")

    wait_for(lambda: len(receiver.posts()) == failed_posts + 2, timeout=30,
             message="the recovered deliveries")
    resent = {json.loads(post.body)["id"] for post in receiver.posts()[failed_posts:]}
    assert resent == event_ids
    _wait_for_statuses(tenant_api, "success", "success")
    page.wait_until(lambda: [row[3] for row in page.apply_filters()] == ["success"] * 2,
                    "the log to show both delivered")


def test_replay_missing_after_re_enabling(page, tenant, tenant_api, receiver, worker):
    """Disabled by a 410, the endpoint misses two events; once it is fixed and enabled
    again, Replay missing sends what it never got."""
    replies = {"status": 410}
    receiver.respond = lambda request: Reply(status=replies["status"])
    created = tenant_api.subscribe(receiver.url, ["invoice.*"])
    first = tenant_api.publish("invoice.created", {"invoice_id": "inv_gone"})
    wait_for(lambda: tenant_api.subscription(created["id"])["status"] == "disabled",
             timeout=30, message="the subscription disabled by the 410")
    missed = {tenant_api.publish("invoice.created", {"invoice_id": f"inv_{number}"})
              for number in range(2)}
    _wait_for_statuses(tenant_api, "disabled", "disabled", "disabled")
    assert len(receiver.posts()) == 1
    replies["status"] = 200

    page.sign_in(tenant["api_key"])
    row = page.subscription_row(created["id"])
    page.wait_text(f"{row} .state", "410")
    page.press("Health", row)
    page.press("Replay missing", "#subscription-health")  # refused while disabled
    page.wait_text("#resend-result", "is disabled; re-activate it")
    assert len(receiver.posts()) == 1
    page.press("Enable", row)
    page.wait_text(f"{row} .state", "active")
    page.press("Replay missing", "#subscription-health")
    page.wait_text("#resend-result", "3 deliveries queued.")

    wait_for(lambda: len(receiver.posts()) == 4, timeout=30, message="the replayed deliveries")
    replayed = {json.loads(post.body)["id"] for post in receiver.posts()[1:]}
    assert replayed == missed | {first}
    _wait_for_statuses(tenant_api, "success", "success", "success")


def test_circuit_state_is_shown_when_not_closed(browser, app, tenant, receiver, test_env):
    """A worker with the breaker on opens it after three failures; the console of a server
    of the same deployment (same settings and key prefix) shows it."""
    breaker = {"WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": "3", "WEBHOOKS_CIRCUIT_WINDOW_SECONDS": "60",
               "WEBHOOKS_CIRCUIT_OPEN_SECONDS": "120", "WEBHOOKS_RETRY_SCHEDULE": "1,1,600"}
    receiver.respond = lambda request: Reply(status=500)
    with isolated_worker(test_env, breaker) as breaker_worker, \
            web(breaker_worker.env, workers=1) as url:
        tenant_api = Api(url, tenant)
        failing = tenant_api.subscribe(receiver.url, ["invoice.*"])
        healthy = tenant_api.subscribe(receiver.url, ["customer.*"])
        for number in range(3):
            tenant_api.publish("invoice.created", {"invoice_id": f"inv_{number}"})
        wait_for(lambda: tenant_api.subscription(failing["id"])["circuit_state"] == "open",
                 timeout=60, interval=0.5, message="the breaker open")

        page = ConsolePage(browser, url).open()
        page.sign_in(tenant["api_key"])
        state = f"{page.subscription_row(failing['id'])} .state"
        page.wait_text(state, "circuit open")
        assert page.text(f"{page.subscription_row(failing['id'])} .badge") == "failing"
        assert page.text(f"{page.subscription_row(healthy['id'])} .state") == "active"
        assert page.page_errors() == []
