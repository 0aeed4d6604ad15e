"""A real worker subprocess with settings of its own, on broker keys of its own.

The session `worker` fixture consumes this run's shared queues with the test settings. A
test that needs a worker configured otherwise (private targets refused, a CA bundle,
another encryption key) gives it a broker key prefix of its own, so neither worker ever
takes the other's messages, and talks to it through a producer on that prefix: `publish`
sends exactly the message `publish.delay()` sends. The producer also sees what the broker
and Flower see: raw queued messages and the task events.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from celery import Celery

from tests.conftest import VAR, start_worker_process
from tests.support.helpers import wait_for
from webhooks_api.messaging.names import PUBLISH_QUEUE, PUBLISH_TASK


class IsolatedWorker:
    def __init__(self, test_env: dict[str, str], extra_env: dict[str, str] | None = None):
        self.prefix = f"{test_env['WEBHOOKS_BROKER_KEY_PREFIX']}iso-{uuid.uuid4().hex[:6]}:"
        self.env = {**test_env, **(extra_env or {}), "WEBHOOKS_BROKER_KEY_PREFIX": self.prefix}
        self.log_path = VAR / f"test-worker-{self.prefix.strip(':').replace(':', '-')}.log"
        self.process: subprocess.Popen | None = None
        self.producer = Celery("isolated-producer", set_as_current=False)
        self.producer.config_from_object("celeryconfig")
        self.producer.conf.update(
            broker_url=test_env["CELERY_BROKER_URL"],
            broker_transport_options={"global_keyprefix": self.prefix},
        )

    def start(self) -> IsolatedWorker:
        self.process = start_worker_process(self.env, log_path=self.log_path)
        wait_for(lambda: self.process.poll() is not None
                 or self.producer.control.ping(timeout=0.5),
                 timeout=60, message="the isolated worker to answer a ping")
        assert self.process.poll() is None, self.log_text()
        return self

    def stop(self, keep_log: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.producer.close()
        if not keep_log:
            self.log_path.unlink(missing_ok=True)

    def publish(self, event_type: str, data: dict, tenant_id: str, **kwargs) -> None:
        """The message of `publish.delay(event_type, data, tenant_id, **kwargs)`."""
        self.producer.send_task(PUBLISH_TASK, args=[event_type, data, tenant_id],
                                kwargs=kwargs, queue=PUBLISH_QUEUE)

    def log_text(self) -> str:
        return Path(self.log_path).read_text(errors="replace") if self.log_path.exists() else ""

    def raw_messages(self, queue: str) -> list[str]:
        """Messages waiting in `queue`, as stored in Redis, with their bodies decoded."""
        client = redis.Redis.from_url(self.env["CELERY_BROKER_URL"])
        try:
            raw = client.lrange(self.prefix + queue, 0, -1)
        finally:
            client.close()
        decoded = []
        for item in raw:
            message = json.loads(item)
            body = base64.b64decode(message["body"]).decode()
            decoded.append(item.decode() + "\n" + body)
        return decoded

    @contextmanager
    def task_events(self) -> Iterator[list[dict]]:
        """Every event the worker publishes while the block runs: what Flower shows."""
        events: list[dict] = []
        with self.producer.connection_for_read() as connection:
            receiver = self.producer.events.Receiver(connection, handlers={"*": events.append})
            thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False},
                                      daemon=True)
            thread.start()
            # The first heartbeat proves the event queue is bound before anything is sent.
            wait_for(lambda: events, timeout=30, message="a first event from the worker")
            yield events
            receiver.should_stop = True
            thread.join(10)


@contextmanager
def isolated_worker(test_env: dict[str, str],
                    extra_env: dict[str, str] | None = None) -> Iterator[IsolatedWorker]:
    """The log is kept in var/ when the block fails, for the post-mortem."""
    worker = IsolatedWorker(test_env, extra_env).start()
    try:
        yield worker
    except BaseException:
        worker.stop(keep_log=True)
        raise
    worker.stop()
