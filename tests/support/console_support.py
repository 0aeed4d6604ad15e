"""Headless Chromium for the console and portal tests: Debian's chromium driven through
chromedriver (selenium), never a downloaded browser; a small page object that reads what
a user sees on /console (and on the portal, the same page); the tenant's own API calls;
and a page of another origin that embeds the portal."""

from __future__ import annotations

import html
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.support.helpers import wait_for
from webhooks_api.http.views import API_PREFIX

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-quic", "--no-first-run",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1100")
# The browser and the page wait for a real worker and receiver: generous, never a sleep.
TIMEOUT = 30


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium (own profile directory) that keeps the page's console log."""
    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_output=str(log_dir / "test-chromedriver.log"))
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


class ConsolePage:
    """/console as a user sees it: visible text, buttons by their label, form fields."""

    def __init__(self, driver: webdriver.Chrome, base_url: str):
        self.driver = driver
        self.base_url = base_url

    def open(self) -> ConsolePage:
        self.driver.get(f"{self.base_url}/console")
        return self

    def element(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def visible(self, css: str) -> bool:
        return any(e.is_displayed() for e in self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        return self.element(css).text

    def wait_until(self, condition, message: str):
        """Waits for `condition()`; an element re-rendered meanwhile is simply read again."""

        def settled():
            try:
                return condition()
            except StaleElementReferenceException:
                return False

        return wait_for(settled, timeout=TIMEOUT, interval=0.1, message=message)

    def wait_text(self, css: str, expected: str) -> None:
        self.wait_until(lambda: self.visible(css) and expected in self.text(css),
                        f"{expected!r} in {css}")

    def fill(self, css: str, value: str) -> None:
        field = self.element(css)
        field.clear()
        field.send_keys(value)

    def set_value(self, css: str, value: str) -> None:
        """Sets an input the keyboard handles awkwardly (datetime-local) as a script would."""
        self.driver.execute_script("arguments[0].value = arguments[1]", self.element(css), value)

    def select(self, css: str, value: str) -> None:
        Select(self.element(css)).select_by_value(value)

    def press(self, label: str, within: str = "body") -> None:
        """Clicks the visible button labelled `label` inside `within`."""
        scope = self.element(within)
        buttons = [b for b in scope.find_elements(By.TAG_NAME, "button")
                   if b.is_displayed() and b.text == label]
        assert buttons, f"no button {label!r} in {within}"
        buttons[0].click()

    def sign_in(self, api_key: str) -> None:
        self.fill("#api-key", api_key)
        self.press("Sign in", "#sign-in-form")

    def subscription_row(self, subscription_id: str) -> str:
        return f'#subscription-table tr[data-id="{subscription_id}"]'

    def delivery_rows(self) -> list[list[str]]:
        """The deliveries log as cells of text, one list per row."""
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#delivery-table tbody tr")
        return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]

    def apply_filters(self) -> list[list[str]]:
        """Presses Apply and returns the log once the page has loaded it."""
        self.press("Apply", "#delivery-filters")
        self.wait_until(lambda: self.element("#delivery-table").get_attribute("aria-busy") is None,
                        "the deliveries log to load")
        return self.delivery_rows()

    def session_storage(self, key: str) -> str | None:
        return self.driver.execute_script("return sessionStorage.getItem(arguments[0])", key)

    def page_errors(self) -> list[str]:
        """Script errors and refused resources (CSP) the page logged. Answers of the API
        that are errors (a 404 the page handles) are logged by Chromium as failed loads of
        a resource and are not errors of the page."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"
                and "Failed to load resource" not in entry["message"]]

    def screenshot(self, name: str) -> Path:
        folder = ROOT / "artifacts"
        folder.mkdir(exist_ok=True)
        path = folder / name
        # The whole page, not only the window: its height as laid out now.
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1400, max(1100, height + 140))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1100)
        return path


class Api:
    """The tenant's own calls to the REST API of the running server."""

    def __init__(self, base_url: str, tenant: dict):
        self.root = f"{base_url}{API_PREFIX}"
        self.headers = tenant["headers"]

    def call(self, method: str, path: str, expected: int, **kwargs) -> dict:
        answer = requests.request(method, f"{self.root}{path}", headers=self.headers,
                                  timeout=10, **kwargs)
        assert answer.status_code == expected, answer.text
        return answer.json() if answer.content else {}

    def publish(self, event_type: str, data: dict) -> str:
        return self.call("POST", "/publish", 202,
                         json={"event_type": event_type, "data": data})["event_id"]

    def subscription(self, subscription_id: str) -> dict:
        return self.call("GET", f"/subscriptions/{subscription_id}", 200)

    def subscribe(self, url: str, event_types: list[str], **fields) -> dict:
        return self.call("POST", "/subscriptions", 201,
                         json={"url": url, "event_types": event_types, **fields})

    def deliveries(self, **filters) -> list[dict]:
        return self.call("GET", "/deliveries", 200, params=filters)["items"]


@contextmanager
def embedding_site(host: str) -> Iterator[EmbeddingSite]:
    """A web site of another origin (another loopback address) whose page frames a URL."""
    site = EmbeddingSite(host)
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()


class EmbeddingSite:
    """What a platform serves: a page with the portal in an iframe (`frame_url`)."""

    def __init__(self, host: str):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("<!doctype html><title>Platform</title><h1>Platform</h1>"
                        f'<iframe id="portal" src="{html.escape(site.frame_url)}" '
                        'width="1300" height="900"></iframe>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.frame_url = "about:blank"

    def open(self, driver: webdriver.Chrome, frame_url: str) -> None:
        """Loads the site's page framing `frame_url`; the driver stays on the top page."""
        self.frame_url = frame_url
        driver.switch_to.default_content()
        driver.get(f"{self.origin}/")
