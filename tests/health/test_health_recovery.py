"""Recovery through the API and the CLI (docs/HEALTH.md): replay after re-activation,
recover of failed deliveries, the test event, and the statistics; with the session worker
and a real receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    publish_via_api,
    subscription,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply

API = "/api/v1/webhooks"


def _marker(request) -> int | None:
    return json.loads(request.body)["data"].get("n")


def _delivered_markers(receiver, path: str) -> list[int]:
    return [_marker(post) for post in receiver.posts(path)]


def _settled(session, subscription_id: str, count: int) -> bool:
    deliveries = deliveries_of(session, subscription_id)
    return len(deliveries) == count and all(
        d.status not in ("pending", "retrying") and d.claimed_until is None
        for d in deliveries)


def test_replay_sends_what_was_missed_while_disabled_oldest_first_and_once(
        app, client, tenant, receiver, session, worker, runner):
    gone = {"answer": 200}
    receiver.respond = lambda request: Reply(gone["answer"])
    sub = create_subscription(client, tenant, f"{receiver.base_url}/a", ["invoice.created"])
    publish_via_api(client, tenant, data={"n": 0})
    wait_for(lambda: _settled(session, sub["id"], 1), timeout=60, message="event 0")
    gone["answer"] = 410
    publish_via_api(client, tenant, data={"n": 1})
    wait_for(lambda: subscription(session, sub["id"]).status == "disabled", timeout=60,
             message="the 410 to disable the subscription")
    for marker in (2, 3, 4):
        publish_via_api(client, tenant, data={"n": marker})
    wait_for(lambda: _settled(session, sub["id"], 5), timeout=60,
             message="the events kept while disabled")
    assert _delivered_markers(receiver, "/a") == [0, 1]
    replay = f"{API}/subscriptions/{sub['id']}/replay"

    # Only on an active subscription.
    assert client.post(replay, headers=tenant["headers"], json={}).status_code == 409
    gone["answer"] = 200
    assert client.patch(f"{API}/subscriptions/{sub['id']}", headers=tenant["headers"],
                        json={"is_active": True}).status_code == 200
    replayed = client.post(replay, headers=tenant["headers"], json={})
    assert replayed.status_code == 202, replayed.json
    by_marker = {_marker_of(session, d.id): d.id for d in deliveries_of(session, sub["id"])}
    assert replayed.json == {"count": 4,
                             "delivery_ids": [by_marker[n] for n in (1, 2, 3, 4)]}
    assert client.post(replay, headers=tenant["headers"], json={}).json["count"] == 0

    wait_for(lambda: len(receiver.posts("/a")) == 6, timeout=60, message="the replay")
    wait_for(lambda: _settled(session, sub["id"], 5), timeout=60, message="the replay")
    assert sorted(_delivered_markers(receiver, "/a")[2:]) == [1, 2, 3, 4]
    assert {d.status for d in deliveries_of(session, sub["id"])} == {"success"}
    # Nothing left to replay from any time: every delivery has been delivered.
    again = client.post(replay, headers=tenant["headers"],
                        json={"since": "2000-01-01T00:00:00Z"})
    assert again.json == {"count": 0, "delivery_ids": []}
    from_cli = runner.invoke(args=["replay", sub["id"], "--since", "2000-01-01"])
    assert from_cli.exit_code == 0 and from_cli.stdout == "", from_cli.output


def _marker_of(session, delivery_id: str) -> int:
    delivery = next(d for d in deliveries_of(session) if d.id == delivery_id)
    return json.loads(delivery.event.body)["data"]["n"]


def test_recover_resends_exactly_the_failed_deliveries_of_the_window(
        app, client, tenant, receiver, session, worker, runner):
    answers = {"default": 500}
    receiver.respond = lambda request: Reply(200 if _marker(request) == 0
                                             else answers["default"])
    sub = create_subscription(client, tenant, f"{receiver.base_url}/b", ["invoice.created"])
    started = datetime.now(UTC) - timedelta(seconds=5)
    for marker in (0, 1, 2):
        publish_via_api(client, tenant, data={"n": marker})
    wait_for(lambda: _settled(session, sub["id"], 3), timeout=90,
             message="two deliveries failed after four attempts")
    statuses = sorted(d.status for d in deliveries_of(session, sub["id"]))
    assert statuses == ["failed", "failed", "success"]
    failed = sorted((d.created_at, d.id) for d in deliveries_of(session, sub["id"])
                    if d.status == "failed")
    recover = f"{API}/subscriptions/{sub['id']}/recover"

    # A window before them recovers nothing.
    before = client.post(recover, headers=tenant["headers"], json={
        "since": (started - timedelta(hours=1)).isoformat(), "until": started.isoformat()})
    assert before.status_code == 202 and before.json == {"count": 0, "delivery_ids": []}

    answers["default"] = 200
    posts_before = len(receiver.posts("/b"))
    result = runner.invoke(args=["recover", sub["id"], "--since",
                                 started.strftime("%Y-%m-%dT%H:%M:%S")])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [delivery_id for _, delivery_id in failed]
    wait_for(lambda: _settled(session, sub["id"], 3)
             and len(receiver.posts("/b")) == posts_before + 2, timeout=60,
             message="the recovered deliveries")
    assert sorted(_delivered_markers(receiver, "/b")[posts_before:]) == [1, 2]
    assert {d.status for d in deliveries_of(session, sub["id"])} == {"success"}
    # Recovered once: nothing is failed any more.
    assert client.post(recover, headers=tenant["headers"], json={
        "since": started.isoformat()}).json["count"] == 0
    # Each recovered delivery got exactly one more (manual) attempt.
    for _, delivery_id in failed:
        detail = client.get(f"{API}/deliveries/{delivery_id}", headers=tenant["headers"]).json
        assert [a["trigger"] for a in detail["attempts"]] == ["automatic"] * 4 + ["manual"]


def test_the_test_event_goes_to_this_subscription_only_and_returns_the_attempt(
        app, client, tenant, receiver, session, worker):
    receiver.respond = lambda request: Reply(200 if request.path == "/c" else 418)
    sub = create_subscription(client, tenant, f"{receiver.base_url}/c", ["invoice.created"])
    create_subscription(client, tenant, f"{receiver.base_url}/other", ["webhook.test", "*"])
    response = client.post(f"{API}/subscriptions/{sub['id']}/test", headers=tenant["headers"])
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["status"] == "success" and answer["delivery_id"].startswith("dlv_")
    assert answer["attempt"]["response_status"] == 200
    assert answer["attempt"]["trigger"] == "manual" and answer["attempt"]["attempt_number"] == 1
    [post] = receiver.posts("/c")
    body = json.loads(post.body)
    assert body["type"] == "webhook.test" and body["id"] == answer["event_id"]
    assert body["data"]["subscription_id"] == sub["id"]
    assert post.headers["X-Webhook-Delivery-Id"] == answer["delivery_id"]
    wait_for_delivery(session, lambda d: d.id == answer["delivery_id"]
                      and d.status == "success")
    assert receiver.posts("/other") == []
    assert [d.subscription_id for d in deliveries_of(session)] == [sub["id"]]


def test_stats_count_outcomes_and_latency_per_bucket(app, client, tenant, receiver, session,
                                                     worker):
    receiver.respond = lambda request: Reply(200 if _marker(request) != 9 else 500)
    sub = create_subscription(client, tenant, f"{receiver.base_url}/d", ["invoice.created"])
    for marker in (1, 2, 9):
        publish_via_api(client, tenant, data={"n": marker})
    wait_for(lambda: _settled(session, sub["id"], 3), timeout=90, message="the outcomes")
    stats_url = f"{API}/subscriptions/{sub['id']}/stats"
    now = datetime.now(UTC)
    stats = client.get(stats_url, headers=tenant["headers"], query_string={
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(), "bucket": "minute"})
    assert stats.status_code == 200, stats.json
    body = stats.json
    assert set(body) == {"since", "until", "bucket", "totals", "series"}
    totals = body["totals"]
    assert (totals["success"], totals["failure"], totals["pending"]) == (2, 1, 0)
    assert totals["success_rate"] == 2 / 3
    latency = totals["latency_ms"]
    assert set(latency) == {"p50", "p90", "p99"}
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"]
    assert len(body["series"]) in (61, 62)  # the minutes of the window
    assert sum(bucket["success"] for bucket in body["series"]) == 2
    assert sum(bucket["failure"] for bucket in body["series"]) == 1
    busy = [bucket for bucket in body["series"] if bucket["success"] or bucket["failure"]]
    assert busy and all(bucket["latency_ms"]["p50"] is not None for bucket in busy)
    quiet = body["series"][0]
    assert quiet["success_rate"] is None and quiet["latency_ms"]["p99"] is None
    assert set(quiet) == {"start", "success", "failure", "pending", "success_rate",
                          "latency_ms"}

    default = client.get(stats_url, headers=tenant["headers"]).json
    assert default["bucket"] == "hour" and default["totals"]["success"] == 2
    too_many = client.get(stats_url, headers=tenant["headers"], query_string={
        "since": "2000-01-01T00:00:00Z", "bucket": "minute"})
    assert too_many.status_code == 422
