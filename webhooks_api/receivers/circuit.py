"""A circuit breaker per subscription, its state in Redis so every worker shares it
(docs/HEALTH.md). Off unless WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD is set. The Redis is the
broker's, or WEBHOOKS_REDIS_URL's (`Settings.protection_redis_url`: a RabbitMQ broker has
none, and a worker then refuses to start with the breaker on).

    closed --N failed attempts within the window--> open --open time over--> half_open
    half_open --the one probe succeeds--> closed ; --it fails--> open again

Keys under the deployment's key prefix, `circuit:<subscription id>:`:
- `fails`   failed attempts in the current window (expires with the window; a success
            deletes it, so only consecutive failures count);
- `open`    exists while the breaker is open (expires after the open time);
- `tripped` exists from opening until a success closes it: `tripped` without `open` is
            half-open;
- `probe`   the one delivery let through while half-open (expires if its worker dies).

Each transition is one Lua script, atomic across workers. Redis not answering must not stop
deliveries: the breaker then lets everything through and says so in the log.
"""

from __future__ import annotations

import logging
from functools import cache

import redis

from webhooks_api.config import Settings, current_settings

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)
# A tripped breaker forgets itself after this long without any attempt.
TRIPPED_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS: fails, open, tripped, probe. ARGV: probe lease ms.
# Returns: 1 allowed (closed), 2 allowed as the half-open probe, 0 denied (open, or another
# delivery is probing).
_ALLOW = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then
    if redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[1]) then return 2 end
    return 0
end
return 1
"""

# KEYS: fails, open, tripped, probe.
# ARGV: succeeded (1/0), threshold, window ms, open ms, tripped ms.
# Returns 1 when this attempt opened the breaker.
_RECORD = """
if ARGV[1] == '1' then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return 0
end
if redis.call('EXISTS', KEYS[3]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
    redis.call('DEL', KEYS[1], KEYS[4])
    return 1
end
local failures = redis.call('INCR', KEYS[1])
if failures == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if failures >= tonumber(ARGV[2]) and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
"""


@cache
def redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per Redis URL and process. The pool is bounded and
    blocks: hundreds of deliveries in flight under the gevent pool share its connections
    rather than each opening one; a wait past 2 s is an error the callers let through.
    kombu's `redis+socket://` (the embedded Redis) is redis-py's `unix://`."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=50, timeout=2, socket_timeout=2, socket_connect_timeout=2))


class Breaker:
    """The breakers of one deployment (settings give the Redis, the prefix, the limits)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.enabled = (settings.circuit_failure_threshold > 0
                        and settings.protection_redis_url is not None)
        self._prefix = f"{settings.broker_key_prefix or ''}circuit:"

    def _keys(self, subscription_id: str) -> list[str]:
        base = f"{self._prefix}{subscription_id}:"
        return [base + name for name in ("fails", "open", "tripped", "probe")]

    @property
    def _redis(self) -> redis.Redis:
        return redis_client(self.settings.protection_redis_url)

    def allow(self, subscription_id: str, probe_lease_seconds: int) -> bool:
        """May a delivery to this subscription be attempted now?"""
        if not self.enabled:
            return True
        try:
            verdict = self._redis.eval(_ALLOW, 4, *self._keys(subscription_id),
                                       probe_lease_seconds * 1000)
        except redis.RedisError:
            logger.warning("circuit breaker: Redis did not answer; letting %s through",
                           subscription_id, exc_info=True)
            return True
        if verdict == 2:
            logger.info("circuit breaker of %s: half-open, one probe goes", subscription_id)
        return verdict != 0

    def record(self, subscription_id: str, succeeded: bool) -> None:
        if not self.enabled:
            return
        settings = self.settings
        try:
            opened = self._redis.eval(
                _RECORD, 4, *self._keys(subscription_id), 1 if succeeded else 0,
                settings.circuit_failure_threshold, settings.circuit_window_seconds * 1000,
                settings.circuit_open_seconds * 1000, TRIPPED_TTL_MS)
        except redis.RedisError:
            logger.warning("circuit breaker: Redis did not answer; %s not counted",
                           subscription_id, exc_info=True)
            return
        if opened:
            logger.warning("circuit breaker of %s opened for %d s", subscription_id,
                           settings.circuit_open_seconds)

    def open_for_seconds(self, subscription_id: str) -> float:
        """How long the breaker stays open (0 when it is not)."""
        try:
            remaining_ms = self._redis.pttl(self._keys(subscription_id)[1])
        except redis.RedisError:
            return 0.0
        return max(remaining_ms, 0) / 1000

    def state(self, subscription_id: str) -> str:
        return self.states([subscription_id])[subscription_id]

    def states(self, subscription_ids: list[str]) -> dict[str, str]:
        """The state of each breaker, read in one round trip (a pipeline of EXISTS);
        closed when Redis does not answer, as the attempt path treats it."""
        if not self.enabled or not subscription_ids:
            return dict.fromkeys(subscription_ids, CLOSED)
        pipeline = self._redis.pipeline(transaction=False)
        for subscription_id in subscription_ids:
            _, open_key, tripped_key, _ = self._keys(subscription_id)
            pipeline.exists(open_key)
            pipeline.exists(tripped_key)
        try:
            found = pipeline.execute()
        except redis.RedisError:
            return dict.fromkeys(subscription_ids, CLOSED)
        return {subscription_id: OPEN if is_open else HALF_OPEN if tripped else CLOSED
                for subscription_id, is_open, tripped
                in zip(subscription_ids, found[::2], found[1::2], strict=True)}

    def count_by_state(self) -> dict[str, int]:
        """Breakers open and half-open now (for the Prometheus gauge); closed ones have no
        keys to count."""
        counts = dict.fromkeys(STATES[1:], 0)
        if not self.enabled:
            return counts
        try:
            tripped = [key.decode()[len(self._prefix):-len(":tripped")] for key in
                       self._redis.scan_iter(match=f"{self._prefix}*:tripped", count=500)]
        except redis.RedisError:
            logger.warning("circuit breaker: Redis did not answer", exc_info=True)
            return counts
        for state in self.states(tripped).values():  # one round trip for them all
            if state != CLOSED:
                counts[state] += 1
        return counts


def circuit_states(subscription_ids: list[str]) -> dict[str, str]:
    """The breaker states of subscriptions, for the API's responses."""
    return Breaker(current_settings()).states(subscription_ids)
