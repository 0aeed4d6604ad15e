"""Prometheus metrics as a scraper sees them, from a real stack: gunicorn with two worker
processes and a prefork Celery worker sharing one PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import uuid

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import VAR, start_worker_process
from tests.support import processes
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.domain.models import Delivery, Event
from webhooks_dev.embedded import free_port
from webhooks_worker.publishing.fanout import fan_out

EVENTS = 3
PUBLISH = ("POST", "/api/v1/webhooks/publish", "202")


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) → value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scraped: dict, name: str, **labels) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def stack_env(test_env, tmp_path, broker_url):
    """A private key prefix (the session worker does not see these messages) and an
    empty metrics directory; the prefix's keys are deleted afterwards."""
    prefix = f"test-metrics-{uuid.uuid4().hex[:8]}:"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    yield {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix,
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "WEBHOOKS_WORKER_METRICS_PORT": str(free_port())}
    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def test_metrics_add_up_every_process_of_the_stack(stack_env, tenant, receiver, session):
    receiver.respond = lambda request: Reply(status=500 if "fail" in request.path else 200)
    headers = tenant["headers"]
    worker = start_worker_process(stack_env, log_path=VAR / "test-metrics-worker.log")
    try:
        with processes.web(stack_env, workers=2) as api:
            for url in (receiver.url, receiver.url + "?fail=1"):
                created = requests.post(f"{api}/api/v1/webhooks/subscriptions", timeout=10,
                                        headers=headers,
                                        json={"url": url, "event_types": ["invoice.*"]})
                assert created.status_code == 201, created.text
            for number in range(EVENTS):
                published = requests.post(f"{api}/api/v1/webhooks/publish", headers=headers,
                                          timeout=10, json={"event_type": "invoice.created",
                                                            "data": {"n": number}})
                assert published.status_code == 202, published.text

            def all_final():
                session.expire_all()
                statuses = sorted(d.status for d in session.query(Delivery))
                return statuses == ["failed"] * EVENTS + ["success"] * EVENTS

            wait_for(all_final, timeout=90, message="3 successes and 3 failures (4 attempts)")

            # Any gunicorn process may answer; each must serve the totals of all of them.
            for _ in range(6):
                scraped = samples(requests.get(f"{api}/metrics", timeout=10).text)
                attempts = "webhooks_delivery_attempts_total"
                assert value(scraped, attempts, outcome="success", status_class="2xx") == 3
                assert value(scraped, attempts, outcome="retrying", status_class="5xx") == 9
                assert value(scraped, attempts, outcome="failed", status_class="5xx") == 3
                assert value(scraped, "webhooks_delivery_attempt_duration_seconds_count",
                             status_class="5xx") == 12
                assert value(scraped, "webhooks_publish_to_delivery_seconds_count") == 3
                assert value(scraped, "webhooks_http_requests_total", method=PUBLISH[0],
                             route=PUBLISH[1], status=PUBLISH[2]) == EVENTS
                assert value(scraped, "webhooks_subscriptions", status="active") == 2
                assert value(scraped, "webhooks_subscriptions_failing", status="active") == 1
                assert value(scraped, "webhooks_delivery_oldest_due_age_seconds") == 0
                for queue in ("webhooks.publish", "webhooks.deliver", "webhooks.retry",
                              "webhooks.maintenance"):
                    assert value(scraped, "webhooks_queue_messages", queue=queue) == 0

            port = stack_env["WEBHOOKS_WORKER_METRICS_PORT"]
            node = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            assert value(node, "webhooks_delivery_attempts_total", outcome="success",
                         status_class="2xx") == 3

            # Without a worker, what is owed shows as queue depth and delivery age.
            worker.terminate()
            worker.wait(30)
            for number in range(2):
                requests.post(f"{api}/api/v1/webhooks/publish", headers=headers, timeout=10,
                              json={"event_type": "invoice.paid", "data": {"n": number}})
            # A fan-out whose messages were lost: due deliveries nobody attempts.
            event = session.query(Event).filter_by(event_type="invoice.paid").first()
            fan_out(session, event)
            session.commit()

            def lagging():
                scraped = samples(requests.get(f"{api}/metrics", timeout=10).text)
                age = value(scraped, "webhooks_delivery_oldest_due_age_seconds")
                return scraped if age >= 1 else None

            scraped = wait_for(lagging, timeout=30, message="the oldest due delivery to age")
            assert value(scraped, "webhooks_queue_messages", queue="webhooks.publish") == 2
            assert value(scraped, "webhooks_deliveries_open", status="pending") == 2
            assert value(scraped, "webhooks_delivery_oldest_open_age_seconds") >= 1
            assert value(scraped, "webhooks_broker_unacked_messages") == 0
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(30)
