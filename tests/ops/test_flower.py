"""Flower shows our tasks with readable, secret-free arguments, read through its HTTP API
while it watches the test worker (Procfile `flower`, basic auth from FLOWER_BASIC_AUTH)."""

from __future__ import annotations

import ast
import json
import subprocess
from collections import Counter

import pytest
import requests

from tests.conftest import VAR, WORKER_CONCURRENCY, node_name, start_worker_process
from tests.support import processes
from tests.support.engine_support import create_subscription, execute, new_prefix, publish_via_api
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.domain.models import Delivery
from webhooks_api.messaging.batch_sender import CHUNK_MESSAGES
from webhooks_dev.embedded import free_port

AUTH = ("ops", "flower-pass-123")
PAYLOAD_MARKER = "payload-marker-7f3a"
QUERY_TOKEN = "query-token-5c1e"


@pytest.fixture
def flower(test_env, worker):
    with processes.flower({**test_env, "FLOWER_BASIC_AUTH": ":".join(AUTH)}) as base:
        processes.wait_until_flower_watches_workers(base, AUTH)
        yield base


def _tasks(base: str, name: str) -> dict:
    response = requests.get(f"{base}/api/tasks", params={"taskname": name}, auth=AUTH,
                            timeout=10)
    response.raise_for_status()
    return response.json()


def test_flower_shows_every_task_with_readable_arguments_also_after_a_retry(
        app, client, tenant, receiver, worker, session, flower):
    answers = iter([503])  # the first request of the test fails, the rest succeed
    receiver.respond = lambda request: Reply(status=next(answers, 200))
    secrets = []
    for url in (receiver.url, receiver.url + "?token=" + QUERY_TOKEN):
        created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"],
                              json={"url": url, "event_types": ["invoice.*"]})
        secrets.append(created.json["secret"])

    from webhooks_worker.tasks import publish

    with app.app_context():
        publish.delay("invoice.created", {"note": PAYLOAD_MARKER}, tenant["id"],
                      metadata={"m": PAYLOAD_MARKER}, event_id="evt_flower_1")
    api_published = client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.paid", "data": {"note": PAYLOAD_MARKER}})
    assert api_published.status_code == 202

    def all_delivered():
        session.expire_all()
        deliveries = session.query(Delivery).all()
        done = len(deliveries) == 4 and all(d.status == "success" for d in deliveries)
        return deliveries if done else None

    deliveries = wait_for(all_delivered, timeout=60, message="four successful deliveries")
    by_id = {delivery.id: delivery for delivery in deliveries}
    assert sorted(d.attempt_count for d in deliveries) == [1, 1, 1, 2]

    def all_shown():
        tasks = _tasks(flower, "webhooks.deliver")
        done = len(tasks) == 4 and all(t["state"] == "SUCCESS" for t in tasks.values())
        return tasks if done else None

    deliver_tasks = wait_for(all_shown, timeout=30, message="Flower to show four deliveries")
    host = receiver.url.split("/")[2]
    for task in deliver_tasks.values():
        delivery = by_id[ast.literal_eval(task["kwargs"])["delivery_id"]]
        assert task["args"] == "()" and task["sent"] and task["worker"]
        # A retry keeps the task id: Flower shows the retried message's arguments, which
        # Celery builds anew (attempt 2), so they must be readable too.
        assert task["retries"] == delivery.attempt_count - 1
        assert task["kwargs"] == repr({
            "delivery_id": delivery.id, "attempt_number": delivery.attempt_count,
            "trigger": "automatic", "event_type": delivery.event_type, "target_host": host,
        })

    publish_tasks = {ast.literal_eval(task["kwargs"])["event_id"]: task
                     for task in _tasks(flower, "webhooks.publish").values()}
    assert publish_tasks["evt_flower_1"]["kwargs"] == repr({
        "event_type": "invoice.created", "tenant_id": tenant["id"],
        "event_id": "evt_flower_1", "event_data": "<hidden>", "metadata": "<hidden>",
    })
    from_api = publish_tasks[api_published.json["event_id"]]
    assert from_api["sent"], "the API's task-sent event reached Flower"
    assert from_api["kwargs"] == repr({"tenant_id": tenant["id"],
                                       "event_id": api_published.json["event_id"]})

    # Beat's sweep too (sent here as beat sends it).
    app.extensions["celery"].send_task("webhooks.sweep")
    sweeps = wait_for(lambda: [t for t in _tasks(flower, "webhooks.sweep").values()
                               if t["state"] == "SUCCESS"],
                      timeout=30, message="Flower to show the sweep")
    assert sweeps[0]["result"] == repr({"events_fanned_out": 0, "deliveries_requeued": 0,
                                        "bulk_retries_resumed": 0})

    everything = json.dumps(requests.get(f"{flower}/api/tasks", auth=AUTH, timeout=10).json())
    for secret in secrets:
        assert secret not in everything and secret.removeprefix("whsec_") not in everything
    assert PAYLOAD_MARKER not in everything and QUERY_TOKEN not in everything

    workers = requests.get(f"{flower}/api/workers", params={"refresh": 1}, auth=AUTH,
                           timeout=30).json()
    assert any("webhooks.deliver" in task for info in workers.values()
               for task in info.get("registered", [])), workers


def test_a_fan_out_of_several_pipelines_is_delivered_and_shown_with_its_labels(
        app, client, tenant, receiver, worker, session, flower):
    """The worker's fan-out to 1,200 subscriptions: the publish task sends the first 500
    deliver messages itself and hands the other 700 to two `webhooks.enqueue` tasks (500,
    200). Every delivery arrives once, and Flower shows every deliver task as sent by the
    publish task or one of its enqueue tasks, with its readable arguments, and the enqueue
    tasks with a count instead of the ids."""
    count = 2 * CHUNK_MESSAGES + 200
    first = create_subscription(client, tenant, receiver.url, ["invoice.*"])
    execute(app, """
        INSERT INTO subscriptions (id, tenant_id, url, event_types, timeout_seconds,
                                   secret_ciphertext)
        SELECT 'sub_copy' || n || 'x' || substr(md5(random()::text), 1, 12), tenant_id, url,
               event_types, timeout_seconds, secret_ciphertext
        FROM subscriptions, generate_series(2, :count) AS n WHERE id = :id
    """, count=count, id=first["id"])
    event_id = publish_via_api(client, tenant, "invoice.paid")

    def all_delivered():
        session.expire_all()
        deliveries = session.query(Delivery).all()
        done = len(deliveries) == count and all(d.status == "success" for d in deliveries)
        return deliveries if done else None

    deliveries = wait_for(all_delivered, timeout=300, message=f"{count} successful deliveries")
    assert {d.attempt_count for d in deliveries} == {1}
    posts = receiver.posts()
    assert len(posts) == count and {json.loads(p.body)["id"] for p in posts} == {event_id}

    def all_shown():
        tasks = _tasks(flower, "webhooks.deliver")
        done = len(tasks) == count and all(t["state"] == "SUCCESS" for t in tasks.values())
        return tasks if done else None

    deliver_tasks = wait_for(all_shown, timeout=60, message=f"Flower to show {count} tasks")
    [publish_task] = _tasks(flower, "webhooks.publish").values()
    enqueue_tasks = _tasks(flower, "webhooks.enqueue").values()
    assert sorted(ast.literal_eval(t["kwargs"])["deliveries"] for t in enqueue_tasks) == [
        200, CHUNK_MESSAGES]
    assert all(t["parent_id"] == t["root_id"] == publish_task["uuid"] and
               t["state"] == "SUCCESS" for t in enqueue_tasks)
    senders = {publish_task["uuid"]} | {t["uuid"] for t in enqueue_tasks}
    host = receiver.url.split("/")[2]
    shown = {}
    for task in deliver_tasks.values():
        assert task["sent"] and task["args"] == "()"
        assert task["root_id"] == publish_task["uuid"] and task["parent_id"] in senders
        kwargs = ast.literal_eval(task["kwargs"])
        shown[kwargs["delivery_id"]] = kwargs
    assert shown == {d.id: {"delivery_id": d.id, "attempt_number": 1, "trigger": "automatic",
                            "event_type": "invoice.paid", "target_host": host}
                     for d in deliveries}
    by_sender = Counter(task["parent_id"] for task in deliver_tasks.values())
    assert by_sender[publish_task["uuid"]] == CHUNK_MESSAGES
    # The enqueue tasks travel ahead of the publish task's own 500 on the deliver queue, so
    # the worker took them first and their chunks were sent while those 500 ran.
    first_chunk = [task["received"] for task in deliver_tasks.values()
                   if task["parent_id"] == publish_task["uuid"]]
    assert max(task["received"] for task in enqueue_tasks) < min(first_chunk)


def test_flower_api_needs_the_configured_password(test_env, worker, flower):
    assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{flower}/api/workers", auth=("ops", "wrong"),
                        timeout=10).status_code == 401


def _production(test_env: dict[str, str]) -> dict[str, str]:
    """A production deployment's settings on this run's servers, without FLOWER_BASIC_AUTH."""
    return {**test_env, "WEBHOOKS_ENV": "production",
            "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env),
            "WEBHOOKS_ENCRYPTION_KEY": "cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtbG9uZyE=",
            "WEBHOOKS_REQUIRE_HTTPS": "true", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "false"}


@pytest.mark.parametrize("command", [processes.FLOWER_LAUNCHER, processes.FLOWER_CELERY],
                         ids=["launcher", "celery-flower"])
def test_flower_refuses_to_start_open_in_production(test_env, command):
    port = free_port()
    (VAR / "test-flower-refusal.log").unlink(missing_ok=True)
    with processes.running([*command, f"--port={port}", "--address=127.0.0.1"],
                           _production(test_env), "test-flower-refusal.log") as flower:
        try:
            code = flower.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        opened = requests.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code \
            if code is None else None
    log = (VAR / "test-flower-refusal.log").read_text()
    assert code not in (None, 0), f"Flower started open (its task list answered {opened})"
    assert "refusing to start: FLOWER_BASIC_AUTH must be set" in log, log[-2000:]
    assert "Visit me at" not in log


@pytest.mark.parametrize("auth", ["env", "option"])
def test_flower_starts_in_production_with_basic_auth_from_its_env_or_its_options(
        test_env, auth):
    """The check reads Flower's own options: `--basic-auth` counts as FLOWER_BASIC_AUTH."""
    env, options = _production(test_env), ()
    if auth == "env":
        env["FLOWER_BASIC_AUTH"] = ":".join(AUTH)
    else:
        options = (f"--basic-auth={':'.join(AUTH)}",)
    with processes.flower(env, processes.FLOWER_CELERY, options) as base:
        assert requests.get(f"{base}/api/workers", timeout=10).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=AUTH, timeout=30).status_code == 200


def test_a_production_worker_needs_no_flower_password(test_env):
    """The check is Flower's: a worker of the same deployment starts."""
    log_path = VAR / "test-production-worker.log"
    log_path.unlink(missing_ok=True)
    worker = start_worker_process(_production(test_env), log_path=log_path)
    try:
        wait_for(lambda: worker.poll() is not None or "ready." in log_path.read_text(),
                 timeout=60, message="the production worker to start")
        assert worker.poll() is None, log_path.read_text()[-2000:]
    finally:
        processes.stop_group(worker)


def test_flower_and_inspect_show_the_pool_its_concurrency_and_deliveries_in_flight(
        app, client, tenant, receiver, worker, flower, session):
    """What an operator reads off a running worker: the gevent pool, how many deliveries it
    runs at once (the Procfile's --concurrency), and the deliveries in flight now (three
    attempts held open by the receiver)."""
    release = receiver.hold("/held")
    create_subscription(client, tenant, f"{receiver.base_url}/held", ["user.login"])
    for marker in range(3):
        publish_via_api(client, tenant, "user.login", {"n": marker})
    try:
        wait_for(lambda: len(receiver.posts("/held")) == 3, timeout=30,
                 message="three attempts in flight")
        in_flight = {post.headers["X-Webhook-Delivery-Id"] for post in receiver.posts("/held")}
        inspect = app.extensions["celery"].control.inspect(timeout=5)
        name = node_name(worker)
        stats = inspect.stats()[name]
        assert stats["pool"]["implementation"].endswith("gevent:TaskPool")
        assert stats["pool"]["max-concurrency"] == WORKER_CONCURRENCY
        active = {task["kwargs"]["delivery_id"]
                  for task in inspect.active()[name] if task["name"] == "webhooks.deliver"}
        assert in_flight <= active

        def shown_by_flower() -> dict | None:
            # Flower asks the worker itself (refresh); its tasks only when named.
            answer = requests.get(f"{flower}/api/workers",
                                  params={"refresh": 1, "workername": name}, auth=AUTH,
                                  timeout=30)
            answer.raise_for_status()
            shown = answer.json().get(name, {})
            return shown if "stats" in shown and "active" in shown else None

        shown = wait_for(shown_by_flower, timeout=60, interval=1,
                         message="Flower to show the worker's stats and active tasks")
        assert shown["stats"]["pool"]["max-concurrency"] == WORKER_CONCURRENCY
        assert shown["stats"]["pool"]["implementation"].endswith("gevent:TaskPool")
        # Flower shows the kwargs as their repr (the message's kwargsrepr).
        assert in_flight <= {ast.literal_eval(task["kwargs"])["delivery_id"]
                             for task in shown["active"]}
    finally:
        release.set()
