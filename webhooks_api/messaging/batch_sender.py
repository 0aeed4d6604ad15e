"""Task messages to Redis in pipelines: a fan-out to 10,000 subscriptions costs 20 round
trips to the broker, not 20,000.

`celery.send_task` spends ~0.5 ms of CPU and two round trips on every message: the task,
then its `task-sent` event, which is how Flower learns a task was sent. Here kombu's
`Producer.batch()` (kombu 5.7) collects what `Producer.publish` would send, in kombu's own
Redis envelope (body_encoding, delivery_tag, delivery_info; the queue's key with the broker's
`global_keyprefix`; the event on the celeryev fanout channel), into one non-transactional
pipeline per chunk of messages. Each message is still built and routed by Celery:
`amqp.create_task_message` (task protocol 2, with our argsrepr/kwargsrepr for Flower) and
`amqp.send_task_message` (the before/after_task_publish signals, the task-sent event), so
Redis receives the task messages `send_task` would have written (tests/engine/test_engine_enqueue.py
compares the bytes); the chunk's task-sent events, each as `send_task` makes it, travel
together as one `task.multi` event message (`_SentEvents`). Re-typing the envelope by hand
would drift with the next kombu release; kombu's batch keeps it kombu's.

What `app.send_task` would redo for every message is done once per call here: reading the
parent and root ids of the task being run (the fan-out's publish task, for Flower), declaring
the queues and binding the event exchange (kombu caches declarations, but checks the cache by
copying the entity each time: with the retry wrapper, a quarter of `send_task`'s CPU; here
a queue kombu has declared on this connection is not declared again, and the event
dispatcher is kept with the pooled producer), and wrapping each publish in
`connection.ensure` (buffering does no I/O; the pipeline runs once, without retry).
Measured: a third of the CPU per message, and the events in one message another 45 %
(docs/decisions/0005-batched-enqueue.md).

A chunk the broker did not take (Redis down, or a pipeline cut off part-way) is logged and
left to `webhooks.sweep`, which finds its rows in PostgreSQL; messages of a cut-off pipeline
that did arrive are harmless twice over, since a delivery's claim takes a message once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery
from celery.utils import uuid
from kombu import Producer

from webhooks_api.messaging.message import Message

logger = logging.getLogger(__name__)

# Messages per pipeline (one round trip): an LPUSH each, and one PUBLISH of their task-sent
# events.
CHUNK_MESSAGES = 500


def send_batched(celery: Celery, producer: Producer, messages: Sequence[Message],
                 retry_policy: dict) -> int:
    """Send `messages` through `producer` (whose transport batches) in chunks; returns how
    many the broker took. `retry_policy` covers connecting and declaring the queues, the
    steps that may talk to the broker outside a pipeline: connected first with it, a
    producer fresh from the pool fails as fast as `send_task(retry_policy=…)` would, not
    after kombu's connect timeout."""
    try:
        producer.connection.ensure_connection(**retry_policy)
        declared = producer.connection.declared_entities  # emptied by kombu on reconnect
        for queue in {message.queue for message in messages}:
            entity = celery.amqp.queues[queue]
            if hash(entity) not in declared:  # kombu's own cache key for a queue
                producer.maybe_declare(entity, retry=True, **retry_policy)
    except Exception:  # the broker is down: PostgreSQL holds the rows, the sweep resends
        _log_not_taken(messages)
        return 0
    sender = _Sender(celery, producer)
    return sum(sender.send_chunk(chunk) for chunk in chunks(messages))


def chunks(messages: Sequence[Message]) -> list[Sequence[Message]]:
    """`messages` in runs of CHUNK_MESSAGES: one pipeline each here, one `webhooks.enqueue`
    task each for a large fan-out (webhooks_worker.publishing.publish)."""
    return [messages[start:start + CHUNK_MESSAGES]
            for start in range(0, len(messages), CHUNK_MESSAGES)]


class _Sender:
    """What every message of one call shares: Celery's send function, the event dispatcher,
    and the ids `send_task` would read for each message."""

    def __init__(self, celery: Celery, producer: Producer):
        self.celery = celery
        self.producer = producer
        self.events = _SentEvents(_sent_events_dispatcher(celery, producer))
        self.reply_to = celery.thread_oid
        parent = celery.current_worker_task
        self.lineage = ({"root_id": parent.request.root_id or parent.request.id,
                         "parent_id": parent.request.id} if parent else {})

    def send_chunk(self, chunk: Sequence[Message]) -> int:
        try:
            with self.producer.batch(max_size=len(chunk) + 1):
                for message in chunk:
                    self._publish(message)
                self.events.flush(self.producer)
        except Exception:  # the broker is down: PostgreSQL holds the rows, the sweep resends
            self.events.clear()
            _log_not_taken(chunk)
            return 0
        return len(chunk)

    def _publish(self, message: Message) -> None:
        """As `celery.send_task(name, kwargs=…, queue=…, argsrepr=…, kwargsrepr=…)` does,
        the labels also as message properties (Celery passes unknown options there)."""
        amqp = self.celery.amqp
        options = ({"argsrepr": message.reprs[0], "kwargsrepr": message.reprs[1]}
                   if message.reprs else {})
        task = amqp.create_task_message(
            uuid(), message.name, None, message.kwargs, reply_to=self.reply_to,
            create_sent_event=self.celery.conf.task_send_sent_event, ignore_result=None,
            **self.lineage, **options)
        amqp.send_task_message(self.producer, message.name, task, queue=message.queue,
                               event_dispatcher=self.events, declare=[], retry=False,
                               **options)


class _SentEvents:
    """The task-sent events of one chunk, published as one `task.multi` message: a list of
    events, the form in which a worker sends the events it buffers, and which Flower's
    receiver (Celery's EventReceiver) reads event by event. One kombu publish per chunk
    instead of one per message: the events were half of the CPU of enqueueing a fan-out.

    `amqp.send_task_message` hands each event to `publish`, as it would to a dispatcher;
    the events are made by the dispatcher itself (clock, hostname, pid, timestamp), and
    `flush` publishes them the way its own buffered flush does."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.pending: list = []

    def publish(self, type: str, fields: dict, producer: Producer, **_retry) -> None:
        self.pending.append(self.dispatcher._prepare_event(type, fields))

    def flush(self, producer: Producer) -> None:
        if self.pending:
            with self.dispatcher.mutex:
                self.dispatcher._publish(self.pending, producer, "task.multi")
            self.pending = []

    def clear(self) -> None:
        self.pending = []


def _sent_events_dispatcher(celery: Celery, producer: Producer):
    """Celery's dispatcher for task-sent events, publishing through `producer`, its exchange
    bound to the producer's channel: built once per pooled producer and channel, since
    building it cost a quarter of a one-message send. A failed publish raises (no buffer
    kept for later: the chunk is the sweep's)."""
    kept = getattr(producer, "webhooks_sent_events", None)
    if kept is None or kept[0] is not producer.channel:
        events = celery.events.Dispatcher(producer.connection, enabled=False,
                                          buffer_while_offline=False)
        events.exchange = events.exchange(producer.channel)
        kept = producer.webhooks_sent_events = (producer.channel, events)
    return kept[1]


def _log_not_taken(messages: Sequence[Message]) -> None:
    logger.warning("enqueue of %d messages failed (%s); the sweep will resend them",
                   len(messages), [(message.name, message.kwargs) for message in messages],
                   exc_info=True)
