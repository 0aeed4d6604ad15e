"""Helpers for the delivery-engine tests: isolated workers, task events, counting, and
reads of the delivery tables.

An isolated worker has a broker key prefix of its own, so only it takes the messages a
test sends through its `client`; the session worker never competes for them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from celery import Celery
from sqlalchemy import select, text

from tests.conftest import VAR, answers_ping, start_worker_process
from tests.support.helpers import wait_for
from tests.support.processes import stop_group
from webhooks_api.config import load_settings
from webhooks_api.domain.models import Delivery, DeliveryAttempt, Event, Subscription
from webhooks_api.extensions import db
from webhooks_api.messaging.names import DELIVER_QUEUE, DELIVER_TASK, PUBLISH_QUEUE, PUBLISH_TASK

ISOLATED_LOG = VAR / "test-isolated-worker.log"
FINISHED_EVENTS = ("task-succeeded", "task-failed", "task-retried", "task-revoked",
                   "task-rejected")


def celery_client(env: dict[str, str]) -> Celery:
    """A sending-only Celery app for the broker and key prefix of `env`."""
    settings = load_settings(env)
    client = Celery("webhooks-test-client", set_as_current=False)
    client.config_from_object("celeryconfig")
    client.conf.update(broker_url=settings.broker_url,
                       broker_transport_options=settings.broker_transport_options)
    return client


@dataclass
class IsolatedWorker:
    process: subprocess.Popen
    client: Celery
    env: dict[str, str]

    def publish(self, *args, **kwargs) -> str:
        """The message of `publish.delay(*args, **kwargs)`; returns its task id."""
        return self.client.send_task(PUBLISH_TASK, args=list(args), kwargs=kwargs,
                                     queue=PUBLISH_QUEUE).id

    @contextlib.contextmanager
    def task_events(self) -> Iterator[list[dict]]:
        """Every event the worker publishes while the block runs: what Flower shows."""
        events: list[dict] = []
        with self.client.connection_for_read() as connection:
            receiver = self.client.events.Receiver(connection, handlers={"*": events.append})
            thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False},
                                      daemon=True)
            thread.start()
            # The first heartbeat proves the event queue is bound before anything is sent.
            wait_for(lambda: events, timeout=30, message="a first event from the worker")
            yield events
            receiver.should_stop = True
            thread.join(10)

    def deliver(self, delivery_id: str, attempt_number: int, trigger: str = "automatic") -> str:
        return send_deliver(self.client, delivery_id, attempt_number, trigger)

    def kill(self) -> None:
        """SIGKILL the worker and its pool: held countdowns are lost, nothing is acked."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


def send_deliver(client: Celery, delivery_id: str, attempt_number: int,
                 trigger: str = "automatic") -> str:
    return client.send_task(DELIVER_TASK, queue=DELIVER_QUEUE, kwargs={
        "delivery_id": delivery_id, "attempt_number": attempt_number, "trigger": trigger,
    }).id


def queued_messages(env: dict[str, str], queue: str) -> list[str]:
    """Messages waiting in `queue` under `env`'s key prefix, as stored in Redis, each with
    its body decoded."""
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    try:
        raw = client.lrange(env["WEBHOOKS_BROKER_KEY_PREFIX"] + queue, 0, -1)
    finally:
        client.close()
    return [item.decode() + "\n" + base64.b64decode(json.loads(item)["body"]).decode()
            for item in raw]


def new_prefix(test_env: dict[str, str]) -> str:
    return f"{test_env['WEBHOOKS_BROKER_KEY_PREFIX']}iso-{uuid.uuid4().hex[:8]}:"


@contextlib.contextmanager
def isolated_worker(test_env: dict[str, str], extra_env: dict[str, str] | None = None, *,
                    prefix: str | None = None, concurrency: int = 1,
                    extra_args: list[str] | None = None, wrapper: list[str] | None = None,
                    cleanup: bool = True) -> Iterator[IsolatedWorker]:
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix or new_prefix(test_env),
           **(extra_env or {})}
    client = celery_client(env)
    process = start_worker_process(env, concurrency=concurrency, extra_args=extra_args,
                                   wrapper=wrapper, log_path=ISOLATED_LOG)
    worker = IsolatedWorker(process, client, env)
    try:
        wait_for(lambda: process.poll() is not None or answers_ping(client, process),
                 timeout=90, message="the isolated worker to answer a ping")
        assert process.poll() is None, "the isolated worker exited; see var/*.log"
        yield worker
    finally:
        stop_group(process)
        client.close()
        if cleanup:
            delete_broker_keys(env)


def log_offset() -> int:
    """Where the next isolated worker's lines will start (its log is appended to)."""
    return ISOLATED_LOG.stat().st_size if ISOLATED_LOG.exists() else 0


def log_since(offset: int) -> str:
    """The isolated workers' log from `offset` on."""
    with open(ISOLATED_LOG, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def delete_broker_keys(env: dict[str, str]) -> None:
    """Remove what an isolated worker left under its own prefix (never anything else)."""
    prefix = env["WEBHOOKS_BROKER_KEY_PREFIX"]
    connection = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    keys = list(connection.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        connection.delete(*keys)
    connection.close()


class TaskEvents:
    """The Celery task events of a broker prefix (what Flower shows), collected in a thread.

    Lets a test wait until a message was fully handled by a worker, so that "nothing was
    sent" can be asserted without sleeping.
    """

    def __init__(self, client: Celery):
        self.events: list[dict] = []
        self._client = client
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._connection = client.connection_for_read()
        self._receiver = client.events.Receiver(self._connection, handlers={"*": self._on},
                                                app=client)
        self._thread = threading.Thread(target=self._receiver.capture, daemon=True,
                                        kwargs={"wakeup": True})

    def _on(self, event: dict) -> None:
        with self._lock:
            self.events.append(event)
        if event["type"].startswith("worker-"):
            self._ready.set()

    def start(self) -> TaskEvents:
        self._thread.start()
        assert self._ready.wait(30), "no worker event arrived: is a worker running?"
        return self

    def stop(self) -> None:
        self._receiver.should_stop = True
        self._thread.join(10)
        self._connection.close()

    def finished(self, task_id: str) -> dict | None:
        with self._lock:
            return next((e for e in self.events
                         if e.get("uuid") == task_id and e["type"] in FINISHED_EVENTS), None)

    def of(self, task_id: str) -> list[str]:
        with self._lock:
            return [e["type"] for e in self.events if e.get("uuid") == task_id]

    def wait_finished(self, *task_ids: str, timeout: float = 60) -> list[dict]:
        wait_for(lambda: all(self.finished(task_id) for task_id in task_ids), timeout=timeout,
                 message=f"tasks {task_ids} to finish")
        return [self.finished(task_id) for task_id in task_ids]


def create_subscription(client, tenant, url: str, event_types: list[str] | None = None,
                        **fields) -> dict:
    created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"],
                          json={"url": url, "event_types": event_types or ["*"], **fields})
    assert created.status_code == 201, created.json
    return created.json


def deliveries_of(session, subscription_id: str | None = None) -> list[Delivery]:
    session.expire_all()
    query = select(Delivery).order_by(Delivery.created_at)
    if subscription_id:
        query = query.where(Delivery.subscription_id == subscription_id)
    return list(session.scalars(query))


def attempts_of(session, delivery_id: str) -> list[DeliveryAttempt]:
    session.expire_all()
    return list(session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.attempt_number)
    ))


def wait_for_delivery(session, predicate, timeout: float = 30, message: str = "a delivery"):
    """The first delivery (re-read each time) for which `predicate` holds."""
    def found():
        return next((d for d in deliveries_of(session) if predicate(d)), None)
    return wait_for(found, timeout=timeout, message=message)


def wait_until_recorded(app, count: int = 1, timeout: float = 30) -> None:
    """Until `count` deliveries exist, none awaits its first attempt and none is claimed;
    reads in an app context of its own, so the test holds no transaction meanwhile."""
    def recorded():
        with app.app_context():
            deliveries = deliveries_of(db.session)
            return len(deliveries) >= count and all(
                d.status != "pending" and d.claimed_until is None for d in deliveries)
    wait_for(recorded, timeout=timeout, message=f"{count} deliveries recorded")


def subscription(session, subscription_id: str) -> Subscription:
    session.expire_all()
    return session.get(Subscription, subscription_id)


def event_row(session, tenant_id: str, event_id: str) -> Event | None:
    session.expire_all()
    return session.scalar(select(Event).where(Event.tenant_id == tenant_id,
                                              Event.event_id == event_id))


def execute(app, sql: str, **params) -> None:
    """One committed statement of the test's own (e.g. to make a retry overdue)."""
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def finished_at(attempt: DeliveryAttempt) -> dt.datetime:
    return attempt.started_at + dt.timedelta(milliseconds=attempt.duration_ms)


def publish_via_api(client, tenant, event_type: str = "invoice.created",
                    data: dict | None = None, **headers) -> str:
    published = client.post("/api/v1/webhooks/publish",
                            headers={**tenant["headers"], **headers},
                            json={"event_type": event_type, "data": data or {"n": 1}})
    assert published.status_code == 202, published.json
    return published.json["event_id"]


def store_without_messages(app, tenant_id: str, event_type: str = "invoice.created",
                           data: dict | None = None, fan_out: bool = True,
                           event_id: str | None = None) -> list[str]:
    """An event stored (and fanned out) as if every broker message about it was lost;
    returns the delivery ids that no message will ever announce."""
    from webhooks_api.services.events import store_event
    from webhooks_worker.publishing.fanout import fan_out as insert_deliveries

    with app.app_context():
        settings = app.config["WEBHOOKS_SETTINGS"]
        event = store_event(db.session, settings, tenant_id, event_type, data or {"n": 1},
                            event_id=event_id).event
        delivery_ids = ([message.kwargs["delivery_id"] for message in insert_deliveries(
            db.session, event)] if fan_out else [])
        db.session.commit()
    return delivery_ids


@contextlib.contextmanager
def counting(app) -> Iterator[dict]:
    """Counts, in this process: SQL statements sent (and how many of them inside a
    transaction, i.e. with BEGIN and COMMIT round trips around them), task messages
    published (with their kwargs), and the app engine's pool checkouts currently held."""
    from celery.signals import before_task_publish
    from sqlalchemy import Engine, event

    with app.app_context():
        engine = db.engine
    counts: dict = {"statements": 0, "in_transaction": 0, "sql": [], "messages": [],
                    "engine": engine}

    def on_statement(connection, cursor, statement, *args):
        counts["statements"] += 1
        counts["in_transaction"] += not connection.connection.dbapi_connection.autocommit
        counts["sql"].append(" ".join(statement.split())[:80])

    def on_publish(sender=None, body=None, **kwargs):
        counts["messages"].append((sender, body[1]))

    # Every engine: the app's, and the worker's autocommit one (webhooks_worker.runtime.prepared).
    event.listen(Engine, "before_cursor_execute", on_statement)
    before_task_publish.connect(on_publish, weak=False)
    try:
        yield counts
    finally:
        event.remove(Engine, "before_cursor_execute", on_statement)
        before_task_publish.disconnect(on_publish)
