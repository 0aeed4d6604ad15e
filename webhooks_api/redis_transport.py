"""kombu's Redis transport with one fix: a worker must survive a Redis outage.

Celery 5.7's consumer, on losing the broker, first `collect()`s its connection (which
detaches the transport from it: `transport.client = None`) and then `close()`s it. Closing
the default channel gives its unacknowledged messages back (the tasks running, the
countdowns held in memory) through a new Redis client, whose parameters kombu reads from
the detached connection: AttributeError, which neither kombu nor Celery expect there, and
the worker exits with "Unrecoverable error" instead of reconnecting (seen in
tests/test_faults.py: Redis stopped while a countdown is held). Here the channel raises a
Redis connection error instead, which both already ignore at that point; the worker
reconnects. The messages stay in Redis's unacked set, restored after the visibility
timeout, and the sweep re-sends their deliveries sooner.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis import exceptions


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise exceptions.ConnectionError("the broker connection was already collected")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
