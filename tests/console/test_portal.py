"""The embeddable portal (/portal/<id>#<token>) in headless Chromium against the running
server: framed by a page of an origin the tenant allowed, refused by any other, and what a
read-only, a bound, a revoked and an expired session show.

The embedding "platform" is a page served from another loopback address (another
origin); Chromium enforces the portal's `frame-ancestors` against it.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.support.api_support import seed_deliveries
from tests.support.console_support import ConsolePage, embedding_site
from tests.support.engine_support import execute
from tests.support.helpers import wait_for
from tests.support.processes import VAR

WRITE_LABELS = {"New subscription", "Edit", "Disable", "Enable", "Rotate secret", "Send test",
                "Retry", "Retry now", "Recover window", "Replay missing", "Save"}
# The page's own script runs the request, with the token the page holds (the fragment).
PAGE_FETCH = """
const [method, path, body, done] = arguments;
fetch(`/api/v1/portal${path}`, {method, headers: {"Content-Type": "application/json",
      Authorization: `Bearer ${decodeURIComponent(location.hash.slice(1))}`},
      body: body == null ? undefined : JSON.stringify(body)})
  .then(async (answer) => done([answer.status, await answer.json()]));
"""


@pytest.fixture(scope="module")
def allowed_site():
    with embedding_site("127.0.0.2") as site:
        yield site


@pytest.fixture(scope="module")
def other_site():
    with embedding_site("127.0.0.3") as site:
        yield site


def button_labels(page: ConsolePage) -> set[str]:
    return {button.text for button in page.driver.find_elements(By.TAG_NAME, "button")
            if button.is_displayed()}


def test_an_allowed_origin_frames_the_portal_and_another_cannot(
        browser, base_url, tenant, tenant_api, receiver, allowed_site, other_site):
    tenant_api.call("PATCH", "/portal-settings", 200, json={
        "allowed_origins": [allowed_site.origin], "title": "Acme webhooks",
        "accent_color": "#aa3300"})
    portal = tenant_api.call("POST", "/portal-sessions", 201, json={})
    page = ConsolePage(browser, base_url)

    browser.get_log("browser")
    allowed_site.open(browser, f"{base_url}{portal['url']}")
    browser.switch_to.frame("portal")
    page.wait_text("#subscriptions-empty", "No subscriptions yet.")
    assert page.text("h1") == "Acme webhooks"
    assert browser.execute_script("return document.title") == "Acme webhooks"
    accent = browser.execute_script("return getComputedStyle(document.documentElement)"
                                    ".getPropertyValue('--accent').trim()")
    assert accent == "#aa3300"
    assert browser.find_elements(By.ID, "sign-in") == []

    page.press("New subscription")
    page.fill("#subscription-url", receiver.url)
    page.fill("#subscription-events", "invoice.*")
    page.press("Save", "#subscription-form")
    page.wait_text("#secret", "shown only now")
    subscription_id = page.text("#secret-subscription")
    assert page.text("#secret-value").startswith("whsec_")
    page.wait_text(page.subscription_row(subscription_id), receiver.url)
    assert tenant_api.subscription(subscription_id)["url"] == receiver.url
    assert page.page_errors() == []
    page.screenshot("portal-embedded.png")

    other_site.open(browser, f"{base_url}{portal['url']}")
    refusals: list[str] = []

    def refused() -> bool:
        refusals.extend(entry["message"] for entry in browser.get_log("browser"))
        return any("frame-ancestors" in message for message in refusals)

    page.wait_until(refused, "Chromium to refuse framing by another origin")
    browser.switch_to.frame("portal")
    assert browser.find_elements(By.ID, "console") == []
    browser.switch_to.default_content()

    # The token travelled in the fragment and in headers only: the server's access log
    # has the page's request line (logging flushes each record) and not the token.
    log = VAR / "test-web.log"
    wait_for(lambda: f"GET /portal/{portal['id']} " in log.read_text(), timeout=10,
             message="the portal page in the access log")
    assert portal["token"].split(".", 1)[1] not in log.read_text()


def test_read_only_session_bound_to_one_subscription(browser, base_url, tenant, tenant_api,
                                                    session):
    mine = tenant_api.subscribe("http://127.0.0.1:9/mine", ["invoice.*"])
    other = tenant_api.subscribe("http://127.0.0.1:9/other", ["invoice.*"])
    [my_delivery] = seed_deliveries(session, tenant["id"], mine["id"], attempts=1)
    seed_deliveries(session, tenant["id"], other["id"], attempts=1)
    portal = tenant_api.call("POST", "/portal-sessions", 201, json={
        "read_only": True, "subscription_ids": [mine["id"]]})
    page = ConsolePage(browser, base_url)

    browser.switch_to.default_content()
    browser.get(f"{base_url}{portal['url']}")
    page.wait_text(page.subscription_row(mine["id"]), "/mine")
    page.wait_until(lambda: len(page.delivery_rows()) == 1, "the one delivery")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#subscription-table tbody tr")) == 1
    assert "/other" not in page.text("#console")
    assert browser.find_element(By.CSS_SELECTOR, "#delivery-table tbody tr") \
        .get_attribute("data-id") == my_delivery
    options = browser.execute_script(
        "return [...document.querySelectorAll('#filter-subscription option')]"
        ".map((option) => option.value)")
    assert options == ["", mine["id"]]
    assert "Read only" in page.text("#portal-scope")

    # No write control at all, not even hidden; reading still works.
    assert not button_labels(page) & WRITE_LABELS
    for form in ("subscription-form", "recover-form", "replay-form", "detail-retry"):
        assert browser.find_elements(By.ID, form) == [], form
    page.press("Attempts", "#delivery-table")
    page.wait_text("#attempts", "Attempt 1 · automatic")
    page.press("Health", page.subscription_row(mine["id"]))
    page.wait_text("#health-subscription", mine["id"])
    assert not button_labels(page) & WRITE_LABELS

    def page_fetch(method: str, path: str, body=None) -> tuple[int, dict]:
        return tuple(browser.execute_async_script(PAGE_FETCH, method, path, body))

    status, answer = page_fetch("PATCH", f"/subscriptions/{mine['id']}", {"is_active": False})
    assert (status, answer["error_code"]) == (403, "portal_session_read_only")
    assert page_fetch("POST", f"/deliveries/{my_delivery}/retry")[0] == 403
    assert page_fetch("GET", f"/subscriptions/{other['id']}")[0] == 404
    assert tenant_api.subscription(mine["id"])["is_active"] is True
    assert page.page_errors() == []


def test_revoked_and_expired_sessions_say_so(browser, base_url, app, tenant_api):
    revoked = tenant_api.call("POST", "/portal-sessions", 201, json={})
    expired = tenant_api.call("POST", "/portal-sessions", 201, json={})
    tenant_api.call("DELETE", f"/portal-sessions/{revoked['id']}", 204)
    execute(app, "UPDATE portal_sessions SET expires_at = now() - interval '1 second' "
                 "WHERE id = :id", id=expired["id"])
    page = ConsolePage(browser, base_url)
    browser.switch_to.default_content()

    for portal, words in ((revoked, "This portal session was revoked."),
                          (expired, "This portal session has expired.")):
        browser.get(f"{base_url}{portal['url']}")
        page.wait_text("#portal-ended", words)
        assert not page.visible("#console")
    page.screenshot("portal-expired.png")
