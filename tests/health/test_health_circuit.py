"""The circuit breaker (docs/HEALTH.md), with a worker that has it on: it opens after N
consecutive failures, defers due deliveries without a request and without using an
attempt, lets one half-open probe through, and closes when the probe succeeds. The API and
/metrics read the same state from Redis."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta

import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    finished_at,
    isolated_worker,
    new_prefix,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.receivers.circuit import Breaker

BREAKER = {"WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": "3", "WEBHOOKS_CIRCUIT_WINDOW_SECONDS": "60",
           "WEBHOOKS_CIRCUIT_OPEN_SECONDS": "4",
           # Long enough that the deferrals stay within each delivery's schedule.
           "WEBHOOKS_RETRY_SCHEDULE": "1,1,60"}


def _breakers(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {sample.labels["state"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "webhooks_circuit_breakers"}


def test_the_breaker_opens_defers_probes_and_closes(app, client, tenant, receiver, session,
                                                    test_env, monkeypatch):
    answer = {"status": 500}
    probe_may_finish = threading.Event()

    def respond(request):
        if answer["status"] == "slow":
            probe_may_finish.wait(30)
            return Reply(200)
        return Reply(answer["status"])

    receiver.respond = respond
    sub = create_subscription(client, tenant, receiver.url, ["invoice.created"])
    state_url = f"/api/v1/webhooks/subscriptions/{sub['id']}"
    assert client.get(state_url, headers=tenant["headers"]).json["circuit_state"] == "closed"

    with isolated_worker(test_env, BREAKER, concurrency=3) as worker:
        # The API reads the breakers of this worker's deployment (its settings and prefix).
        monkeypatch.setitem(app.config, "WEBHOOKS_SETTINGS", replace(
            app.config["WEBHOOKS_SETTINGS"], circuit_failure_threshold=3,
            broker_key_prefix=worker.env["WEBHOOKS_BROKER_KEY_PREFIX"]))

        def circuit_state():
            return client.get(state_url, headers=tenant["headers"]).json["circuit_state"]

        for marker in range(3):
            worker.publish(event_type="invoice.created", event_data={"n": marker},
                           tenant_id=tenant["id"])
        # Three failed first attempts open it.
        wait_for(lambda: circuit_state() == "open", timeout=60, message="the breaker open")
        assert len(receiver.posts()) == 3
        assert _breakers(client) == {"open": 1.0, "half_open": 0.0}

        # Their retries were due after 1 s: deferred, no request, no attempt used.
        def deferred():
            deliveries = deliveries_of(session, sub["id"])
            return len(deliveries) == 3 and all(
                d.attempt_count == 1 and d.status == "retrying" and d.next_retry_at
                and d.next_retry_at > finished_at(attempts_of(session, d.id)[0])
                + timedelta(seconds=2) for d in deliveries)
        wait_for(deferred, timeout=30, message="the retries deferred")
        assert len(receiver.posts()) == 3 and circuit_state() == "open"

        # Open time over: one probe goes (and hangs a while); the others wait for it.
        answer["status"] = "slow"
        wait_for(lambda: len(receiver.posts()) == 4, timeout=30, message="the probe")
        assert circuit_state() == "half_open"
        assert _breakers(client) == {"open": 0.0, "half_open": 1.0}
        probe_may_finish.set()

        wait_for(lambda: all(d.status == "success" for d in deliveries_of(session, sub["id"])),
                 timeout=60, message="every delivery through once closed")
        assert circuit_state() == "closed"
        assert _breakers(client) == {"open": 0.0, "half_open": 0.0}
    # Each delivery: the failed first attempt and one successful second; none was used up
    # by the deferrals.
    assert len(receiver.posts()) == 6
    for delivery in deliveries_of(session, sub["id"]):
        assert [a.response_status for a in attempts_of(session, delivery.id)] == [500, 200]


def test_a_delivery_deferred_past_its_schedule_fails_with_circuit_open(
        app, client, tenant, receiver, session, test_env):
    receiver.respond = lambda request: Reply(200 if request.path == "/watch" else 500)
    sub = create_subscription(client, tenant, receiver.url, ["invoice.created"])
    create_subscription(client, tenant, f"{receiver.base_url}/watch",
                        ["webhook.delivery.exhausted"])
    settings = {**BREAKER, "WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD": "2",
                "WEBHOOKS_CIRCUIT_OPEN_SECONDS": "30", "WEBHOOKS_RETRY_SCHEDULE": "1,1"}
    with isolated_worker(test_env, settings, concurrency=2) as worker:
        for marker in range(2):
            worker.publish(event_type="invoice.created", event_data={"n": marker},
                           tenant_id=tenant["id"])
        wait_for(lambda: len(deliveries_of(session, sub["id"])) == 2 and all(
            d.status == "failed" for d in deliveries_of(session, sub["id"])), timeout=60,
            message="both deliveries failed")
        # Each is announced as exhausted, with the deferral's reason as its last error.
        wait_for(lambda: len(receiver.posts("/watch")) == 2, timeout=30,
                 message="the exhausted events")
    for delivery in deliveries_of(session, sub["id"]):
        assert delivery.last_error == "circuit open" and delivery.attempt_count == 1
    assert len(receiver.posts("/hook")) == 2
    announced = [json.loads(post.body)["data"] for post in receiver.posts("/watch")]
    assert sorted(data["delivery_id"] for data in announced) == sorted(
        d.id for d in deliveries_of(session, sub["id"]))
    assert all(data["attempt_count"] == 1 and data["last_response_status"] == 500
               and data["last_error"] == "circuit open" for data in announced)


def test_a_page_of_subscriptions_reads_its_breakers_in_one_round_trip(
        app, client, tenant, receiver, test_env, monkeypatch):
    """The list shows each row's breaker as the detail does (an open one `open`), and the
    page costs one Redis round trip whatever its size (it was two per row)."""
    settings = replace(app.config["WEBHOOKS_SETTINGS"], circuit_failure_threshold=2,
                       broker_key_prefix=new_prefix(test_env))
    monkeypatch.setitem(app.config, "WEBHOOKS_SETTINGS", settings)
    subscriptions = [create_subscription(client, tenant, f"{receiver.url}?n={n}",
                                         ["invoice.created"]) for n in range(20)]
    broken = subscriptions[7]["id"]
    for _ in range(2):
        Breaker(settings).record(broken, succeeded=False)

    round_trips = []
    command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(self, *args, **options):
        round_trips.append(args[0])
        return command(self, *args, **options)

    def counted_pipeline(self, *args, **options):
        round_trips.append("pipeline")
        return pipeline(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_pipeline)
    for size in (5, 20):
        round_trips.clear()
        page = client.get("/api/v1/webhooks/subscriptions", query_string={"limit": size},
                          headers=tenant["headers"])
        assert page.status_code == 200
        states = {item["id"]: item["circuit_state"] for item in page.json["items"]}
        assert len(states) == size and round_trips == ["pipeline"], round_trips
    assert states[broken] == "open"
    assert set(states.values()) == {"open", "closed"}
    detail = client.get(f"/api/v1/webhooks/subscriptions/{broken}", headers=tenant["headers"])
    assert detail.json["circuit_state"] == "open"
