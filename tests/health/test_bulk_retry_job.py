"""Bulk retry jobs end to end (docs/API.md "Bulk retries"): the session worker runs the
chunks and re-sends to a real receiver on 127.0.0.1. The failed deliveries are written
with SQL, as if they had failed earlier."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from celery import Celery
from sqlalchemy import text

from tests.support.engine_support import create_subscription, execute
from tests.support.helpers import wait_for
from tests.support.security_support import override_settings
from webhooks_api.extensions import db
from webhooks_api.messaging.names import BULK_RETRY_TASK, MAINTENANCE_QUEUE
from webhooks_worker.maintenance.sweep import sweep

JOBS = "/api/v1/webhooks/bulk-retries"

# Events and their deliveries, `failed` after four attempts that got a 500.
_FAILED = """
    WITH stored AS (
        INSERT INTO events (event_id, tenant_id, event_type, body, occurred_at,
                            fanned_out_at)
        SELECT :tag || '_' || n, :tenant_id, 'invoice.created',
               json_build_object('id', :tag || '_' || n, 'type', 'invoice.created',
                                 'timestamp', '2026-12-01T00:00:00Z', 'tenant_id', :tenant_id,
                                 'data', json_build_object('n', n), 'metadata', '{}'::json)::text,
               now(), now()
        FROM generate_series(1, :count) AS n
        RETURNING id, event_id)
    INSERT INTO deliveries (id, event_pk, subscription_id, tenant_id, event_type, status,
                            attempt_count, last_response_status, last_error, completed_at)
    SELECT 'dlv_' || left(md5(:tenant_id || stored.event_id), 24), stored.id, :subscription_id,
           :tenant_id, 'invoice.created', 'failed', 4, 500, 'HTTP 500', now()
    FROM stored
"""


def _failed(app, tenant_id: str, subscription_id: str, count: int, tag: str) -> None:
    execute(app, _FAILED, tenant_id=tenant_id, subscription_id=subscription_id, count=count,
            tag=f"evt_{tag}")


def _start(client, tenant, per_second: int, **filters) -> dict:
    now = datetime.now(UTC)
    with override_settings(client.application, bulk_retry_per_second=per_second):
        created = client.post(JOBS, headers=tenant["headers"], json={
            "status": "failed", "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(), **filters})
    assert created.status_code == 202, created.json
    return created.json


def _progress(client, tenant, job_id: str) -> dict:
    response = client.get(f"{JOBS}/{job_id}", headers=tenant["headers"])
    assert response.status_code == 200, response.json
    return response.json


def _sent_once(receiver, path: str, count: int) -> None:
    """Every event of `path` arrived exactly once."""
    by_event = Counter(post.headers["webhook-id"] for post in receiver.posts(path))
    assert len(by_event) == count and set(by_event.values()) == {1}, by_event.most_common(3)


def _attempts(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(text(
            "SELECT trigger, bulk_retry_id, attempt_number, count(*) FROM delivery_attempts "
            "GROUP BY 1, 2, 3 ORDER BY 2")).all()
        db.session.rollback()
    return [tuple(row) for row in rows]


def test_5000_failed_deliveries_are_each_resent_once_and_progress_only_grows(
        app, client, tenant, other_tenant, receiver, worker):
    mine = create_subscription(client, tenant, f"{receiver.base_url}/mine", ["invoice.created"])
    paused = create_subscription(client, tenant, f"{receiver.base_url}/paused",
                                 ["invoice.created"])
    assert client.patch(f"/api/v1/webhooks/subscriptions/{paused['id']}",
                        headers=tenant["headers"], json={"is_active": False}).status_code == 200
    theirs = create_subscription(client, other_tenant, f"{receiver.base_url}/theirs",
                                 ["invoice.created"])
    _failed(app, tenant["id"], mine["id"], 5000, "mine")
    _failed(app, tenant["id"], paused["id"], 40, "paused")
    _failed(app, other_tenant["id"], theirs["id"], 30, "theirs")

    job = _start(client, tenant, per_second=2000)
    assert (job["status"], job["matched"], job["queued"]) == ("running", 5040, 0)
    seen = [job]

    def finished() -> bool:
        seen.append(_progress(client, tenant, job["id"]))
        return seen[-1]["status"] != "running"
    wait_for(finished, timeout=120, interval=0.25, message="the job to finish")

    for before, after in zip(seen, seen[1:], strict=False):
        assert after["matched"] == before["matched"]
        assert before["queued"] <= after["queued"] and before["done"] <= after["done"]
        assert all(after["skipped"].get(reason, 0) >= count
                   for reason, count in before["skipped"].items())
        assert after["done"] <= after["queued"]
    # Seen on its way: 2000 a second take three windows for 5000.
    assert any(0 < s["queued"] < 5000 and s["status"] == "running" for s in seen), seen
    final = seen[-1]
    assert (final["status"], final["matched"], final["queued"], final["done"]) == \
        ("done", 5040, 5000, 5000)
    assert final["skipped"] == {"subscription_paused": 40} and final["finished_at"]

    _sent_once(receiver, "/mine", 5000)
    assert receiver.posts("/paused") == [] and receiver.posts("/theirs") == []
    # Each a manual re-send, the fifth attempt, recorded with the job's id.
    assert _attempts(app) == [("manual", job["id"], 5, 5000)]
    [one] = client.get("/api/v1/webhooks/deliveries", headers=tenant["headers"], query_string={
        "subscription_id": mine["id"], "limit": 1}).json["items"]
    attempts = client.get(f"/api/v1/webhooks/deliveries/{one['id']}",
                          headers=tenant["headers"]).json["attempts"]
    assert [(a["attempt_number"], a["trigger"], a["bulk_retry_id"]) for a in attempts] == \
        [(5, "manual", job["id"])]
    detail = client.get("/api/v1/webhooks/deliveries", headers=other_tenant["headers"],
                        query_string={"limit": 250}).json["items"]
    assert {(d["status"], d["attempt_count"]) for d in detail} == {("failed", 4)}


def test_the_rate_holds_across_a_tenants_jobs_and_cancel_stops_one(
        app, client, tenant, receiver, worker):
    subscriptions = {name: create_subscription(client, tenant, f"{receiver.base_url}/{name}",
                                               ["invoice.created"])["id"]
                     for name in ("a", "b", "c")}
    for name, count in (("a", 30), ("b", 30), ("c", 200)):
        _failed(app, tenant["id"], subscriptions[name], count, name)

    # Two jobs of one tenant share its 20 a second: 60 re-sends need three windows.
    jobs = [_start(client, tenant, per_second=20, subscription_id=subscriptions[name])
            for name in ("a", "b")]
    assert [job["matched"] for job in jobs] == [30, 30]
    wait_for(lambda: all(_progress(client, tenant, job["id"])["status"] == "done"
                         for job in jobs), timeout=30, message="both jobs done")
    _sent_once(receiver, "/a", 30)
    _sent_once(receiver, "/b", 30)
    times = sorted(post.at for post in receiver.posts())
    # Fixed windows: at most twice the rate within any one second, where two windows meet.
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 40, busiest
    # Unshared (20 a second per job), both would have been sent within about one second.
    assert times[-1] - times[0] >= 1.5, times[-1] - times[0]

    # Cancelled after its first chunk: nothing more is queued, what was queued still goes.
    job = _start(client, tenant, per_second=20, subscription_id=subscriptions["c"])
    wait_for(lambda: _progress(client, tenant, job["id"])["queued"] > 0, timeout=15,
             message="the first chunk")
    cancelled = client.post(f"{JOBS}/{job['id']}/cancel", headers=tenant["headers"])
    assert cancelled.status_code == 202 and cancelled.json["status"] == "cancelled"
    queued = cancelled.json["queued"]
    assert 0 < queued < 200
    final = wait_for(lambda: (p := _progress(client, tenant, job["id"]))["finished_at"] and p,
                     timeout=30, message="the cancelled job's re-sends to finish")
    assert (final["status"], final["queued"], final["done"]) == ("cancelled", queued, queued)
    _sent_once(receiver, "/c", queued)
    again = client.post(f"{JOBS}/{job['id']}/cancel", headers=tenant["headers"])
    assert again.status_code == 202 and again.json == final


def test_the_sweep_resumes_a_job_whose_chunk_message_was_lost(
        app, client, tenant, receiver, worker, monkeypatch):
    subscription = create_subscription(client, tenant, f"{receiver.base_url}/lost",
                                       ["invoice.created"])
    _failed(app, tenant["id"], subscription["id"], 10, "lost")
    with monkeypatch.context() as lost:  # the first chunk's message goes nowhere
        lost.setitem(app.extensions, "celery", Celery("lost", broker="memory://"))
        job = _start(client, tenant, per_second=50)
    execute(app, "UPDATE bulk_retries SET updated_at = now() - interval '1 hour'")

    with app.app_context():
        report = sweep(db.session, app.config["WEBHOOKS_SETTINGS"])
    assert report.bulk_retries_resumed == 1
    # A copy of the same chunk message (a redelivery) runs nothing twice.
    app.extensions["celery"].send_task(BULK_RETRY_TASK, queue=MAINTENANCE_QUEUE,
                                       kwargs={"bulk_retry_id": job["id"], "step": 0})
    wait_for(lambda: _progress(client, tenant, job["id"])["status"] == "done", timeout=30,
             message="the resumed job")
    _sent_once(receiver, "/lost", 10)
    assert _progress(client, tenant, job["id"])["done"] == 10
