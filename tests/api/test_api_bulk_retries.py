"""Bulk retry jobs through the API, without a worker: what a bad filter gets, what a
repeated Idempotency-Key gets, and who may read or cancel a job (the jobs themselves run
in tests/health/test_bulk_retry_job.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.support.api_support import API, assert_error, create_subscription, seed_deliveries
from webhooks_api.domain.models import BulkRetry

JOBS = f"{API}/bulk-retries"


def _window(**changes) -> dict:
    now = datetime.now(UTC)
    return {"status": "failed", "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(), **changes}


def _jobs(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(BulkRetry))


def test_bad_filters_answer_422_and_start_nothing(client, tenant, other_tenant, session):
    theirs = create_subscription(client, other_tenant)
    now = datetime.now(UTC)
    cases = {
        "status": _window(status="success"),
        "until": _window(until=(now - timedelta(hours=2)).isoformat()),
        "since": {"status": "failed", "until": now.isoformat()},
        "response_status": _window(response_status=600),
        "subscription_id": _window(subscription_id=theirs["id"]),
        "event_type": _window(event_type="Not A Type"),
        "colour": _window(colour="red"),
    }
    for field, body in cases.items():
        assert_error(client.post(JOBS, headers=tenant["headers"], json=body), 422, field)
    too_long = _window(since=(now - timedelta(days=14, seconds=1)).isoformat(),
                       until=now.isoformat())
    body = assert_error(client.post(JOBS, headers=tenant["headers"], json=too_long), 422,
                        "until")
    assert "14 days" in body["errors"]["until"][0]
    assert _jobs(session) == 0


def test_a_repeated_idempotency_key_answers_the_same_job(client, tenant, other_tenant,
                                                         session):
    subscription = create_subscription(client, tenant)
    seed_deliveries(session, tenant["id"], subscription["id"], 2)
    key = {"Idempotency-Key": "incident-42"}
    first = client.post(JOBS, headers={**tenant["headers"], **key}, json=_window())
    assert first.status_code == 202, first.json
    assert first.json["matched"] == 2 and first.json["status"] == "running"
    assert first.json["filter"]["status"] == "failed"
    again = client.post(JOBS, headers={**tenant["headers"], **key},
                        json=_window(status="disabled"))
    assert again.status_code == 202
    assert (again.json["id"], again.json["matched"]) == (first.json["id"], 2)
    # Keys are per tenant: another tenant's same key is its own job.
    theirs = client.post(JOBS, headers={**other_tenant["headers"], **key}, json=_window())
    assert theirs.status_code == 202 and theirs.json["id"] != first.json["id"]
    assert theirs.json["matched"] == 0
    assert _jobs(session) == 2


def test_a_job_is_the_tenants_own_and_a_done_one_cannot_be_cancelled(client, tenant,
                                                                    other_tenant):
    created = client.post(JOBS, headers=tenant["headers"], json=_window())
    assert created.status_code == 202, created.json
    job = created.json
    # Nothing matched: done at once, no worker needed.
    assert (job["status"], job["matched"], job["queued"], job["done"], job["skipped"]) == \
        ("done", 0, 0, 0, {})
    assert job["finished_at"] and job["per_second"] == 50 and job["id"].startswith("brt_")
    read = client.get(f"{JOBS}/{job['id']}", headers=tenant["headers"])
    assert read.status_code == 200 and read.json == job
    for path in (f"{JOBS}/{job['id']}", f"{JOBS}/brt_nosuchjob", f"{JOBS}/not-an-id"):
        assert_error(client.get(path, headers=other_tenant["headers"]), 404)
    assert_error(client.post(f"{JOBS}/{job['id']}/cancel", headers=other_tenant["headers"]),
                 404)
    assert_error(client.post(f"{JOBS}/{job['id']}/cancel", headers=tenant["headers"]), 409)
