"""The foundation's slice on RabbitMQ instead of Redis: subscribe, publish through the API
and with publish.delay(), signed POSTs received, a retry by countdown, all deliveries
successful. Runs in a vhost of its own; the queues are quorum queues, so the countdown is
kept by the broker (Celery's native delayed delivery)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests import processes
from tests.conftest import ROOT, VAR, start_worker_process
from tests.helpers import wait_for
from tests.receiver import Reply
from webhooks_api.embedded import reachable, wait_for_port
from webhooks_api.models import Delivery


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


def test_slice_on_rabbitmq(rabbitmq_url, test_env, tenant, receiver, session):
    vhost, url = rabbitmq_url
    env = {**test_env, "CELERY_BROKER_URL": url}
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
                deliveries = session.query(Delivery).all()
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
