"""The foundation's slice on RabbitMQ instead of Redis: subscribe, publish through the API
and with publish.delay(), signed POSTs received, a retry by countdown, all deliveries
successful. Runs in a vhost of its own; the queues are quorum queues, so the countdown is
kept by the broker (Celery's native delayed delivery).

The circuit breaker, the rate limit and the in-flight window keep their state in the Redis
of WEBHOOKS_REDIS_URL (here the test run's Redis, under its key prefix): with it they hold
on RabbitMQ as on Redis; without it a worker that has any of them on refuses to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
import redis
import requests
from standardwebhooks.webhooks import Webhook

from tests.conftest import ROOT, VAR, start_worker_process
from tests.support import processes
from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    finished_at,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.config import ConfigError, check_worker_redis, load_settings
from webhooks_api.domain.models import Delivery
from webhooks_api.receivers.window import INITIAL_WINDOW
from webhooks_dev.embedded import reachable, wait_for_port


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture(scope="module")
def rabbitmq_url():
    """A vhost of this run on the machine's RabbitMQ (started if it is stopped)."""
    if not reachable("127.0.0.1", 5672):
        subprocess.run(["rabbitmq-server", "-detached"], check=True, timeout=60)
        wait_for_port(5672, timeout=60)
    vhost = f"webhooks-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost, f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def rabbitmq_env(rabbitmq_url, test_env) -> dict[str, str]:
    """The test run's settings on RabbitMQ, the protections' state in the run's Redis."""
    return {**test_env, "CELERY_BROKER_URL": rabbitmq_url[1],
            "WEBHOOKS_REDIS_URL": test_env["CELERY_BROKER_URL"]}


def test_slice_on_rabbitmq(rabbitmq_url, rabbitmq_env, tenant, receiver, session):
    vhost, _ = rabbitmq_url
    env = rabbitmq_env
    answers = iter([503])  # the first POST fails: its retry waits in RabbitMQ
    receiver.respond = lambda request: Reply(status=next(answers, 200))
    (VAR / "test-rabbitmq-worker.log").unlink(missing_ok=True)
    worker = start_worker_process(env, log_path=VAR / "test-rabbitmq-worker.log")
    try:
        with processes.web(env, workers=1) as api:
            ready = requests.get(f"{api}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            created = requests.post(f"{api}/api/v1/webhooks/subscriptions", timeout=10,
                                    headers=tenant["headers"],
                                    json={"url": receiver.url, "event_types": ["invoice.*"]})
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            published = requests.post(f"{api}/api/v1/webhooks/publish", timeout=10,
                                      headers=tenant["headers"], json={
                                          "event_type": "invoice.created",
                                          "data": {"invoice_id": "inv_rmq"}})
            assert published.status_code == 202, published.text
            delay = subprocess.run(
                [sys.executable, "-c",
                 "from webhooks_worker.tasks import publish\n"
                 "import webhooks_worker.celery_app\n"
                 f"publish.delay('invoice.paid', {{'invoice_id': 'inv_rmq'}}, {tenant['id']!r},"
                 " event_id='evt_rmq_delay')"],
                env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                timeout=60)
            assert delay.returncode == 0, delay.stderr

            def all_delivered():
                session.expire_all()
                deliveries = session.query(Delivery).filter_by(tenant_id=tenant["id"]).all()
                done = len(deliveries) == 2 and all(d.status == "success" for d in deliveries)
                return deliveries if done else None

            deliveries = wait_for(all_delivered, timeout=90,
                                  message="both deliveries to succeed over RabbitMQ")
    finally:
        worker.terminate()
        worker.wait(30)

    assert sorted(d.attempt_count for d in deliveries) == [1, 2]
    assert len(receiver.requests) == 3  # no message was duplicated
    verifier = Webhook(secret)
    bodies = {}
    for request in receiver.requests:
        headers = {name.lower(): value for name, value in request.headers.items()}
        bodies[json.loads(request.body)["type"]] = verifier.verify(request.body, headers)
    assert bodies["invoice.created"]["id"] == published.json()["event_id"]
    assert bodies["invoice.paid"]["id"] == "evt_rmq_delay"

    # Celery kept the countdown in RabbitMQ (native delayed delivery), not in the worker.
    worker_log = (VAR / "test-rabbitmq-worker.log").read_text()
    assert "not supported with native delayed delivery" not in worker_log
    assert "celery_delayed_27" in rabbitmqctl("list_exchanges", "-p", vhost, "name")
    queues = dict(line.split("\t") for line in rabbitmqctl(
        "list_queues", "-p", vhost, "name", "type", "--no-table-headers", "-q").splitlines())
    assert {name: queues.get(name) for name in (
        "webhooks.publish", "webhooks.deliver", "webhooks.retry", "webhooks.maintenance")} \
        == dict.fromkeys(("webhooks.publish", "webhooks.deliver", "webhooks.retry",
                          "webhooks.maintenance"), "quorum")


def _refusal(env: dict[str, str], log_name: str) -> tuple[int | None, str]:
    """Start a worker as the Procfile does; its exit code within 45 s (None: still running,
    then stopped) and its log."""
    log_path = VAR / log_name
    log_path.unlink(missing_ok=True)
    worker = start_worker_process(env, log_path=log_path)
    try:
        code = worker.wait(45)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        processes.stop_group(worker)
    return code, log_path.read_text()


# Each protection: the setting that turns it on, and what turns it off (which a refusal names).
PROTECTIONS_ON = {"WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": "3", "WEBHOOKS_RATE_LIMIT": "on",
                  "WEBHOOKS_IN_FLIGHT_WINDOW": "on"}
PROTECTIONS_OFF = {"WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": "0", "WEBHOOKS_RATE_LIMIT": "off",
                   "WEBHOOKS_IN_FLIGHT_WINDOW": "off"}


def test_a_worker_on_rabbitmq_without_a_redis_refuses_to_start(rabbitmq_url, test_env):
    env = {**test_env, "CELERY_BROKER_URL": rabbitmq_url[1], **PROTECTIONS_ON}
    code, log = _refusal(env, "test-rabbitmq-refusal.log")
    assert code == 1, f"the worker did not refuse (exit {code}):\n{log[-2000:]}"
    [line] = [line for line in log.splitlines() if "refusing to start" in line]
    for named in ["WEBHOOKS_REDIS_URL", *(f"{name}={off}" for name, off in
                                          PROTECTIONS_OFF.items())]:
        assert named in line, line
    assert "ready." not in log

    # With every protection turned off as the message says, the same worker runs.
    env.update(PROTECTIONS_OFF)
    log_path = VAR / "test-rabbitmq-off.log"
    log_path.unlink(missing_ok=True)
    worker = start_worker_process(env, log_path=log_path)
    try:
        wait_for(lambda: worker.poll() is not None or "ready." in log_path.read_text(),
                 timeout=60, message="the worker with its protections off to start")
        assert worker.poll() is None, log_path.read_text()[-2000:]
    finally:
        processes.stop_group(worker)


@pytest.mark.parametrize("protection", sorted(PROTECTIONS_ON))
def test_any_one_protection_on_without_a_redis_is_refused(protection):
    """Each protection alone is enough for the refusal above: the check the worker runs as
    it starts, called directly (a worker's start per case would cost seconds each)."""
    on_rabbitmq = {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x",
                   **PROTECTIONS_OFF, protection: PROTECTIONS_ON[protection]}
    with pytest.raises(ConfigError, match="WEBHOOKS_REDIS_URL is not set") as refused:
        check_worker_redis(load_settings(on_rabbitmq))
    assert [name for name, off in PROTECTIONS_OFF.items()
            if f"{name}={off}" in str(refused.value)] == [protection], refused.value
    # Given a Redis, the same settings start.
    check_worker_redis(load_settings({**on_rabbitmq,
                                      "WEBHOOKS_REDIS_URL": "redis://127.0.0.1:6379/0"}))


HELD, FAILING, LIMITED = "/held", "/failing", "/limited"
HELD_EVENTS, LIMITED_EVENTS, FAILING_EVENTS = INITIAL_WINDOW + 2, 4, 2
# The held receiver's timeout: the deferral of a receiver that never answered. It is held
# for the rate limit's 3 s and the breaker's opening (about 4 s in all), well within it.
HELD_TIMEOUT_SECONDS = 15


def test_breaker_rate_limit_and_window_hold_on_rabbitmq_with_webhooks_redis_url(
        rabbitmq_env, client, tenant, receiver, session):
    """One worker on RabbitMQ: a held receiver gets no more than its window in flight (the
    others deferred), a limited one at most its rate, a failing one is cut off by its open
    breaker, which the API (on RabbitMQ too) reports; their state is in WEBHOOKS_REDIS_URL."""
    env = {**rabbitmq_env, "WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": str(FAILING_EVENTS),
           "WEBHOOKS_CIRCUIT_OPEN_SECONDS": "60",
           # Long enough that every deferral stays within its delivery's schedule.
           "WEBHOOKS_RETRY_SCHEDULE": "1,1,300"}
    release = threading.Event()

    def respond(request):
        if request.path == HELD:
            release.wait(60)
        return Reply(500 if request.path == FAILING else 200)

    receiver.respond = respond
    held = create_subscription(client, tenant, receiver.base_url + HELD, ["user.login"],
                               timeout_seconds=HELD_TIMEOUT_SECONDS)
    failing = create_subscription(client, tenant, receiver.base_url + FAILING,
                                  ["invoice.payment_failed"])
    create_subscription(client, tenant, receiver.base_url + LIMITED, ["invoice.paid"],
                        max_per_second=1)
    protections = redis.Redis.from_url(env["WEBHOOKS_REDIS_URL"])
    leases_key = f"{env['WEBHOOKS_BROKER_KEY_PREFIX']}window:{held['id']}:leases"
    log_path = VAR / "test-rabbitmq-protections.log"
    log_path.unlink(missing_ok=True)
    worker = start_worker_process(env, log_path=log_path, concurrency=30)
    try:
        with processes.web(env, workers=1) as api:
            def publish(event_type: str, count: int) -> None:
                for marker in range(count):
                    answer = requests.post(f"{api}/api/v1/webhooks/publish", timeout=10,
                                           headers=tenant["headers"],
                                           json={"event_type": event_type,
                                                 "data": {"n": marker}})
                    assert answer.status_code == 202, answer.text

            def circuit_state() -> str:
                return requests.get(f"{api}/api/v1/webhooks/subscriptions/{failing['id']}",
                                    headers=tenant["headers"], timeout=10
                                    ).json()["circuit_state"]

            publish("user.login", HELD_EVENTS)
            publish("invoice.payment_failed", FAILING_EVENTS)
            publish("invoice.paid", LIMITED_EVENTS)

            # The window: its initial 10 in flight, the other two deferred, not sent.
            wait_for(lambda: len(receiver.posts(HELD)) == INITIAL_WINDOW, timeout=60,
                     message="the held receiver's window full")
            wait_for(lambda: log_path.read_text().count("window full") >= 2, timeout=30,
                     message="the attempts over the window deferred")
            assert len(receiver.posts(HELD)) == INITIAL_WINDOW
            assert protections.zcard(leases_key) == INITIAL_WINDOW

            # The rate limit: 4 at 1 per second take at least 3 windows of a second.
            wait_for(lambda: len(receiver.posts(LIMITED)) == LIMITED_EVENTS, timeout=60,
                     message="every limited delivery")
            times = sorted(post.at for post in receiver.posts(LIMITED))
            assert max(sum(1 for t in times if start <= t < start + 1)
                       for start in times) <= 2
            assert times[-1] - times[0] >= 1.5, times

            # The breaker: two failed attempts open it; the retries are deferred unsent.
            wait_for(lambda: circuit_state() == "open", timeout=60,
                     message="the breaker open")

            def deferred() -> bool:
                deliveries = deliveries_of(session, failing["id"])
                return len(deliveries) == FAILING_EVENTS and all(
                    d.attempt_count == 1 and d.status == "retrying" and d.next_retry_at
                    and d.next_retry_at > finished_at(attempts_of(session, d.id)[0])
                    + timedelta(seconds=2) for d in deliveries)
            wait_for(deferred, timeout=30, message="the failing retries deferred")
            assert len(receiver.posts(FAILING)) == FAILING_EVENTS

            release.set()
            wait_for(lambda: all(d.status == "success"
                                 for d in deliveries_of(session, held["id"]))
                     and len(deliveries_of(session, held["id"])) == HELD_EVENTS,
                     timeout=90, message="every held delivery through once released")
    finally:
        release.set()
        processes.stop_group(worker)
    assert len(receiver.posts(HELD)) == HELD_EVENTS
