"""Batched enqueueing on Redis (webhooks_api/messaging/batch_sender.py) writes what
`celery.send_task` writes: the same task message under the same key, byte for byte apart
from ids, tags and times, and the same task-sent events, grouped in one `task.multi` event
message (the envelope Celery's own buffered events use). Workers and Flower read these
bytes, so any drift (a new kombu or Celery release) shows here first."""

from __future__ import annotations

import base64
import json
import re

import redis

from tests.support.engine_support import celery_client, delete_broker_keys, new_prefix
from tests.support.helpers import wait_for
from webhooks_api.messaging.batch_sender import send_batched
from webhooks_api.messaging.enqueue import deliver_message, publish_message
from webhooks_api.messaging.labels import deliver_reprs, with_reprs

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EVENT_VARIES = re.compile(r'"(clock|timestamp)": [0-9.]+')


def _comparable(raw: bytes) -> str:
    """A broker message with its body decoded, and its ids, clock and time blanked."""
    envelope = json.loads(raw)
    envelope["body"] = _blanked(base64.b64decode(envelope["body"]).decode())
    return _blanked(json.dumps(envelope))


def _as_one_multi(published: list[tuple[str, str]]) -> tuple[str, str]:
    """Single task-sent event messages (channel, comparable message) as the one `task.multi`
    message that would carry them: their bodies in a list, the routing key `task.multi`."""
    envelope = json.loads(published[0][1])
    envelope["body"] = json.dumps([json.loads(json.loads(message)["body"])
                                   for _, message in published])
    envelope["properties"]["delivery_info"]["routing_key"] = "task.multi"
    channel = published[0][0].rsplit("/", 1)[0] + "/task.multi"
    return channel, json.dumps(envelope)


def _blanked(text: str) -> str:
    return _EVENT_VARIES.sub(r'"\1": 0', _UUID.sub("<id>", text))


class _Broker:
    """Everything a sender wrote under a key prefix: list entries by key, and the messages
    published on its channels (subscribed before anything is sent)."""

    def __init__(self, url: str, prefix: str):
        self.connection = redis.Redis.from_url(url)
        self.prefix = prefix
        self.published: list[tuple[str, str]] = []
        self._pubsub = self.connection.pubsub()
        self._pubsub.psubscribe(**{f"{prefix}*": self._on_message})
        confirmed = self._pubsub.get_message(timeout=10)  # subscribed before anything is sent
        assert confirmed and confirmed["type"] == "psubscribe", confirmed
        self._thread = self._pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def _on_message(self, message: dict) -> None:
        self.published.append((message["channel"].decode(), _comparable(message["data"])))

    def drain(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(key, message) of every list entry in the order written, and every publication;
        both emptied."""
        entries = []
        for key in sorted(self.connection.scan_iter(match=f"{self.prefix}*", _type="list")):
            entries += [(key.decode(), _comparable(raw))
                        for raw in reversed(self.connection.lrange(key, 0, -1))]
            self.connection.delete(key)
        published, self.published = self.published, []
        return entries, published

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self.connection.close()


def test_batched_messages_are_the_bytes_that_send_task_writes(test_env):
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env)}
    client = celery_client(env)
    broker = _Broker(env["CELERY_BROKER_URL"], env["WEBHOOKS_BROKER_KEY_PREFIX"])
    messages = [
        deliver_message("dlv_parity1", 1, "automatic",
                        deliver_reprs("dlv_parity1", 1, "automatic", "invoice.paid",
                                      "https://hooks.example:8443/in?token=t")),
        deliver_message("dlv_parity2", 3, "automatic",  # a retry: the retry queue
                        deliver_reprs("dlv_parity2", 3, "automatic", "invoice.paid",
                                      "https://hooks.example/in")),
        *with_reprs([publish_message("tenant_p", "evt_parity")]),
    ]
    try:
        for message in messages:
            client.send_task(message.name, kwargs=message.kwargs, queue=message.queue,
                             argsrepr=message.reprs[0], kwargsrepr=message.reprs[1])
        wait_for(lambda: len(broker.published) == len(messages), message="Celery's events")
        expected_entries, single_events = broker.drain()
        assert all(channel.endswith("/task.sent") for channel, _ in single_events)

        with client.producer_or_acquire() as producer:
            assert producer.supports_batch_publish
            assert send_batched(client, producer, messages, {}) == len(messages)
        wait_for(lambda: len(broker.published) == 1, message="batched events")
        entries, published = broker.drain()
        assert entries == expected_entries
        assert published == [_as_one_multi(single_events)]
    finally:
        broker.close()
        client.close()
        delete_broker_keys(env)
