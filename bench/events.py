"""Broker messages the worker took, per delivery: Celery's `task-received` events, counted.

A worker sends `task-received` when it takes a message off the broker, before it runs the
task, with the message's argsrepr / kwargsrepr (webhooks_api.messaging.labels: a deliver message
names its delivery id) or, without them, the arguments themselves. A deferred attempt (a
full window, an open breaker) is sent again with a countdown, as a new message: so the
events per delivery id are the messages that delivery cost, whether or not an attempt was
made. This is what Flower shows, from the same events.

Two routes carry them: `task.received`, one event per message, from a worker without an
event loop (gevent, threads); `task.multi`, batches of every task event, from a worker
whose consumer runs on kombu's event loop (prefork, and solo on Redis), which buffers its
task events. One receiver binds each: on Redis the event exchange is PUB/SUB with patterns
(kombu's `fanout_patterns`), so a gevent worker's started / succeeded events and every
heartbeat never reach this process. That also means no heartbeat proves a subscription is
live; a probe event of our own on each route, sent until it comes back, does.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import Counter

from webhooks_api.messaging.names import DELIVER_TASK

_DELIVERY_ID = re.compile(r"\bdlv_[A-Za-z0-9]+")
_PROBE = "bench.probe"
ROUTES = ("task.received", "task.multi")


class ReceivedMessages:
    """Counts the `task-received` events of `task_name` per delivery id while the block runs:
    `with ReceivedMessages(app) as received: ...; received.per_delivery`."""

    def __init__(self, app, task_name: str = DELIVER_TASK, timeout: float = 30):
        self.app, self.task_name, self.timeout = app, task_name, timeout
        self.per_delivery: Counter = Counter()
        self.unnamed = 0  # events of the task that named no delivery id
        self._probes = {f"probe-{uuid.uuid4().hex}": route for route in ROUTES}
        self._seen: set[str] = set()
        self._receivers: list = []
        self._threads: list[threading.Thread] = []
        self._connections: list = []
        self._lock = threading.Lock()  # one receiver thread per route

    def _on_event(self, event: dict) -> None:
        if event.get("uuid") in self._probes:
            self._seen.add(event["uuid"])
        if event.get("name") != self.task_name:
            return
        found = _DELIVERY_ID.search(f"{event.get('args')} {event.get('kwargs')}")
        with self._lock:
            if found:
                self.per_delivery[found.group(0)] += 1
            else:
                self.unnamed += 1

    def _listen(self, route: str) -> None:
        connection = self.app.connection_for_read()
        receiver = self.app.events.Receiver(connection, routing_key=route,
                                            handlers={"task-received": self._on_event})
        thread = threading.Thread(target=receiver.capture, daemon=True,
                                  kwargs={"limit": None, "timeout": None, "wakeup": False})
        self._connections.append(connection)
        self._receivers.append(receiver)
        self._threads.append(thread)
        thread.start()

    def _probe(self) -> None:
        """Send a probe on each route until both have come back."""
        deadline = time.monotonic() + self.timeout
        with self.app.connection_for_write() as connection:
            one = self.app.events.Dispatcher(connection)
            batched = self.app.events.Dispatcher(connection, buffer_group=["task"])
            try:
                while len(self._seen) < len(self._probes):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the task-event subscriptions never saw a probe")
                    for probe, route in self._probes.items():
                        dispatcher = batched if route.endswith(".multi") else one
                        dispatcher.send("task-received", uuid=probe, name=_PROBE)
                    batched.flush()
                    time.sleep(0.2)
            finally:
                one.close()
                batched.close()

    def __enter__(self) -> ReceivedMessages:
        logging.getLogger("kombu.mixins").setLevel(logging.WARNING)  # "Connected to ..."
        for route in ROUTES:
            self._listen(route)
        try:
            self._probe()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for receiver in self._receivers:
            receiver.should_stop = True
        for thread in self._threads:
            thread.join(10)
        for connection in self._connections:
            connection.release()

    def messages_for(self, delivery_ids: set[str]) -> list[int]:
        """Messages taken for each of these deliveries (0 for one never taken)."""
        return [self.per_delivery.get(delivery_id, 0) for delivery_id in delivery_ids]
