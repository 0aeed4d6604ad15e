"""A subscription's `max_per_second`, enforced across every worker (docs/HEALTH.md).

A fixed one-second window counted in Redis: one Lua script reads Redis's own clock (so
workers on machines whose clocks differ agree on the second), increments that second's
counter and says how long until the next second when the limit is used up. At a window's
edge up to twice the limit can pass within one sliding second; the average holds. The Redis
is the broker's or WEBHOOKS_REDIS_URL's (a worker without one refuses to start unless
WEBHOOKS_RATE_LIMIT is off). Redis not answering lets deliveries through, logged.
"""

from __future__ import annotations

import logging

import redis

from webhooks_api.config import Settings
from webhooks_api.receivers.circuit import redis_client

logger = logging.getLogger(__name__)

# KEYS: the counter's prefix. ARGV: the limit. Returns -1 (go) or microseconds to wait.
_TAKE = """
local now = redis.call('TIME')
local key = KEYS[1] .. now[1]
local taken = redis.call('INCR', key)
if taken == 1 then redis.call('EXPIRE', key, 2) end
if taken > tonumber(ARGV[1]) then return 1000000 - tonumber(now[2]) end
return -1
"""


def wait_seconds(settings: Settings, subscription_id: str, max_per_second: int | None
                 ) -> float:
    """0 when an attempt may go now (and counts it), else how long to wait."""
    if not max_per_second or not settings.rate_limit or not settings.protection_redis_url:
        return 0.0
    prefix = f"{settings.broker_key_prefix or ''}ratelimit:{subscription_id}:"
    try:
        waited = redis_client(settings.protection_redis_url).eval(_TAKE, 1, prefix, max_per_second)
    except redis.RedisError:
        logger.warning("rate limit: Redis did not answer; letting %s through",
                       subscription_id, exc_info=True)
        return 0.0
    return 0.0 if waited < 0 else waited / 1_000_000
