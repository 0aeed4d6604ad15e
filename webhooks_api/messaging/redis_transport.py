"""kombu's Redis transport with five fixes: a worker survives a Redis outage, a command
does not pay for building a Redis client, a green pool takes its next messages as soon as
it has room for them, its many tasks wait for a broker connection instead of failing, and
a message held by a worker that died comes back after its own queue's visibility timeout.

Outage: Celery 5.7's consumer, on losing the broker, first `collect()`s its connection
(which detaches the transport from it: `transport.client = None`) and then `close()`s it.
Closing the default channel gives its unacknowledged messages back (the tasks running, the
countdowns held in memory) through a new Redis client, whose parameters kombu reads from
the detached connection: AttributeError, which neither kombu nor Celery expect there, and
the worker exits with "Unrecoverable error" instead of reconnecting (tests/health/test_faults.py:
Redis stopped while a solo-pool worker holds a countdown; the prefork pool too; the gevent
pool's consumer, which has no event loop, survives it either way; filed as
docs/decisions/0011). Here the channel raises a Redis connection error instead, which both
already ignore at that point; the worker reconnects. The messages stay in Redis's unacked
set, restored after the visibility timeout, and the sweep re-sends their deliveries sooner.

Cost: kombu builds a new `redis.Redis` for every publish, ack, unacked-set write and task
event (`Channel.conn_or_acquire`), and redis-py 8 fills a case-insensitive table of ~300
response callbacks in each constructor: about 0.5 ms of CPU, four or five times per task,
measured at 11 % of a worker's CPU (docs/decisions/0006-redis-client-per-channel.md). A
client holds no connection of its own (it borrows from the channel's pool per command and
is thread-safe), so the channel keeps one for as long as its pool lives.

Room: under the gevent pool Celery's consumer has no event loop; it calls
`drain_events(timeout=2)` in a loop, and kombu's poller issues BRPOP only while the
prefetch limit (the pool's concurrency) leaves room. With every slot taken when a poll
starts, the poll waits out its 2 s though the tasks finish in milliseconds: a backlog then
moved `concurrency` messages per 2 s (seen in tests/health/test_faults.py, pairs of tasks two
seconds apart). While the prefetch is full the poll here lasts `FULL_POLL_SECONDS`, so the
next BRPOP goes out within that long of an ack; polling an idle socket that often costs
nothing measurable.

Connections: kombu's channel pool holds 10 connections and raises `MaxConnectionsError`
when an 11th is wanted. Hundreds of greenlets acking and sending retries at once then
failed ("Couldn't ack ... MaxConnectionsError": the message stays unacknowledged and comes
back after the visibility timeout; a retry that cannot be sent is dropped). The pool here
blocks for up to `POOL_WAIT_SECONDS` for a free connection, and holds `MAX_CONNECTIONS`.

Visibility: kombu keeps one index of unacknowledged messages (a sorted set scored by the
time each was taken) and `QoS.restore_visible` hands out again every entry older than the
consuming channel's `visibility_timeout`, whatever its queue. That timeout must outlast
the longest countdown a worker holds (hours), so a message of a worker that was SIGKILLed
waited as long, even a publish message or a first attempt whose task takes seconds. The
transport option `queue_visibility_timeouts` ({routing key: seconds}) gives the messages
of some queues a timeout of their own: each is indexed as if taken `visibility_timeout -
its timeout` seconds earlier, so kombu's unchanged restore, run by any worker of the
deployment with the same `visibility_timeout`, hands it out again after its own timeout.
Every worker scans the index every `unacked_restore_interval` seconds (kombu's option,
10 s), idle or not: kombu's sync path scanned only after a poll that saw nothing, which an
idle worker's BRPOP never has (it answers nil each second), and every 50 ms while the
prefetch is full (each scan takes a mutex in Redis that a SIGKILLed worker leaves held for
`unacked_mutex_expire`, 5 min). Queues it does not name keep `visibility_timeout`. A
worker on kombu's own transport indexes its messages as before (they wait the long
timeout) and restores the others' on time (docs/decisions/0012-held-message-visibility.md).
"""

from __future__ import annotations

import logging
from time import monotonic, time

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from redis import exceptions

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 50
POOL_WAIT_SECONDS = 30


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        """kombu's `append` (index the message, store it, track it), with the message's
        score moved back by what its queue's timeout is shorter than the channel's."""
        exchange, routing_key = (message.delivery_info["exchange"],
                                 message.delivery_info["routing_key"])
        channel = self.channel
        earlier = channel.visibility_timeout - channel.queue_visibility_timeouts.get(
            routing_key, channel.visibility_timeout)
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time() - earlier}) \
                .hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, exchange, routing_key])) \
                .execute()
            virtual.QoS.append(self, message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client = None
    max_connections = MAX_CONNECTIONS
    queue_visibility_timeouts: dict[str, float] = {}
    from_transport_options = (*kombu_redis.Channel.from_transport_options,
                              "queue_visibility_timeouts")

    def _get_pool(self, asynchronous=False):
        if asynchronous:  # the BRPOP/LISTEN connection: one, kombu's own
            return super()._get_pool(asynchronous=True)
        params = self._connparams()
        self.keyprefix_fanout = self.keyprefix_fanout.format(db=params["db"])
        return redis.BlockingConnectionPool(timeout=POOL_WAIT_SECONDS, **params)

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise exceptions.ConnectionError("the broker connection was already collected")
        return super()._connparams(asynchronous=asynchronous)

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the BRPOP/LISTEN client has a pool and poller registration of its own
            return super()._create_client(asynchronous=True)
        client, pool = self._sync_client, self.pool
        if client is None or client.connection_pool is not pool:
            client = self._sync_client = super()._create_client()
        return client


FULL_POLL_SECONDS = 0.005


class _Poller(kombu_redis.MultiChannelPoller):
    _restore_due = 0.0

    def get(self, callback, timeout=None):
        self._restore_when_due()
        if timeout is not None and any(channel.active_queues and not channel.qos.can_consume()
                                       for channel in self._channels):
            timeout = min(timeout, FULL_POLL_SECONDS)
        return super().get(callback, timeout)

    def maybe_restore_messages(self):
        """kombu calls this after every poll that saw nothing (every `FULL_POLL_SECONDS`
        while the prefetch is full) and from the event loop's timer: a scan each time it
        is due, no more."""
        self._restore_when_due()

    def _restore_when_due(self) -> None:
        """Hand out again what dead workers held, every `unacked_restore_interval` seconds.
        `get` asks first: kombu's own call comes only after a poll that saw nothing, and an
        idle BRPOP always answers (nil, each `brpop_timeout`), so an idle gevent worker
        never restored anything."""
        now = monotonic()
        if now < self._restore_due:
            return
        for channel in self._channels:
            if channel.active_queues:  # the unacked index is the deployment's: one suffices
                self._restore_due = now + channel.unacked_restore_interval
                try:
                    channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)
                except channel.connection_errors:  # the consumer's own poll reconnects
                    logger.debug("restore of unacked messages failed", exc_info=True)
                return


class Transport(kombu_redis.Transport):
    Channel = Channel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycle = _Poller()  # before any channel registers with it
