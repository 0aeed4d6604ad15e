"""What a worker tells its operator: JSON log lines per attempt without secrets, and a
warning at start-up when its Redis can lose messages."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.conftest import ROOT, VAR, start_worker_process
from tests.support.helpers import wait_for
from webhooks_api.domain.models import Delivery
from webhooks_dev.embedded import RedisServer

PAYLOAD_MARKER = "card-4242-marker"
HEADER_SECRET = "hdr-secret-9d2b"


@contextmanager
def worker_logging_to(env: dict[str, str], log_path: Path):
    log_path.unlink(missing_ok=True)
    process = start_worker_process(env, log_path=log_path)
    try:
        wait_for(lambda: "ready." in log_path.read_text(errors="replace"), timeout=60,
                 message=f"the worker to be ready ({log_path.name})")
        yield process
    finally:
        process.terminate()
        process.wait(30)


def test_json_log_line_per_attempt_with_ids_and_without_secrets(
        test_env, broker_url, tenant, receiver, client, session):
    prefix = f"test-json-{uuid.uuid4().hex[:8]}:"  # this worker alone sees these messages
    env = {**test_env, "WEBHOOKS_LOG_FORMAT": "json", "WEBHOOKS_BROKER_KEY_PREFIX": prefix}
    created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"], json={
        "url": receiver.url + "?token=query-secret", "event_types": ["invoice.created"],
        "headers": {"Authorization": f"Bearer {HEADER_SECRET}"}})
    assert created.status_code == 201, created.json
    secret = created.json["secret"]
    log_path = VAR / "test-json-worker.log"
    try:
        with worker_logging_to(env, log_path):
            published = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "webhooks_api", "publish",
                 tenant["id"], "invoice.created", json.dumps({"card": PAYLOAD_MARKER})],
                env={**__import__("os").environ, **env}, cwd=ROOT, capture_output=True,
                text=True, timeout=60)
            assert published.returncode == 0, published.stderr
            event_id = published.stdout.strip().splitlines()[-1]

            def delivered():
                session.expire_all()
                return session.query(Delivery).filter_by(status="success").one_or_none()

            delivery = wait_for(delivered, timeout=60, message="the delivery")
            wait_for(lambda: delivery.id in log_path.read_text(), timeout=10,
                     message="the attempt's log line")
    finally:
        client_redis = redis.Redis.from_url(broker_url)
        for key in client_redis.scan_iter(match=f"{prefix}*"):
            client_redis.delete(key)

    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    attempts = [r for r in records if r.get("delivery_id") == delivery.id
                and r["name"] == "webhooks_worker.runtime.observability"]
    assert len(attempts) == 1, attempts
    line = attempts[0]
    assert {key: line[key] for key in (
        "levelname", "tenant_id", "subscription_id", "event_id", "event_type", "delivery_id",
        "attempt_number", "trigger", "status_code", "outcome", "target_host")} == {
        "levelname": "INFO", "tenant_id": tenant["id"], "subscription_id": created.json["id"],
        "event_id": event_id, "event_type": "invoice.created", "delivery_id": delivery.id,
        "attempt_number": 1, "trigger": "automatic", "status_code": 200, "outcome": "success",
        "target_host": receiver.url.split("/")[2]}
    assert isinstance(line["duration_ms"], int) and line["duration_ms"] >= 0
    assert line["task_name"] == "webhooks.deliver" and line["task_id"]
    # Celery's own lines go through the same JSON handler (no hijacked root logger).
    assert any(r["name"].startswith("celery") for r in records)
    for leaked in (secret, secret.removeprefix("whsec_"), HEADER_SECRET, PAYLOAD_MARKER,
                   "query-secret"):
        assert leaked not in text


def test_worker_warns_at_start_when_redis_can_lose_messages(test_env, tmp_path):
    volatile = RedisServer(tmp_path / "volatile", persistent=False).start()
    durable = RedisServer(tmp_path / "durable", persistent=True).start()
    try:
        redis.Redis(port=volatile.port).config_set("maxmemory-policy", "allkeys-lru")
        logs = {}
        for name, server in (("volatile", volatile), ("durable", durable)):
            logs[name] = VAR / f"test-{name}-redis-worker.log"
            with worker_logging_to({**test_env, "CELERY_BROKER_URL": server.url}, logs[name]):
                pass
        volatile_log = logs["volatile"].read_text()
        assert "Redis is not persistent (appendonly no, no snapshots)" in volatile_log
        assert "Redis may evict keys (maxmemory-policy allkeys-lru)" in volatile_log
        assert "broker durability" not in logs["durable"].read_text()
    finally:
        volatile.stop()
        durable.stop()
