"""Each subscription's attempts in flight, across every worker, held to a window that adapts
as TCP's congestion window does (docs/decisions/0002-in-flight-window.md).

A worker process runs hundreds of deliveries at once, so a receiver that hangs until its
timeout could hold them all. Before its POST an attempt takes a slot of its subscription's
window; the slot is a lease in Redis that expires by itself (timeout + claim margin), so
slots held by a SIGKILLed worker come back without anyone giving them back.

    answer (any HTTP status) ── slow start: +1 per answer below ssthresh, else +1/window;
                                the smoothed answer time is kept; timeouts in a row = 0
    timeout, cannot connect  ── ssthresh = max(initial, window / 2); window = 1; +1 timeout
    anything else            ── (DNS, TLS, a refused address) the slot only is given back

Over the window an attempt is not made:
- to a receiver that answers (no timeout in a row, answers known, its oldest attempt in
  flight younger than `STALLED_MS` or four answer times), the task waits a fraction of an
  answer time and asks again, for at most `WAIT_SECONDS`: a busy healthy receiver is
  limited only by what it takes, not deferred;
- otherwise it is deferred (no attempt used) by `2^deferrals` seconds; by its timeout
  when it has never answered and its oldest attempt has been in flight for `STALLED_MS`
  (nothing is learnt about it before that attempt times out); while it keeps timing out,
  by its timeout doubled per timeout in a row; never more than the longest scheduled
  delay. A delivery to a receiver that keeps hanging is therefore re-sent a handful of
  times over its whole schedule, not polled.

State per subscription under the deployment's prefix: `window:<id>` (a hash: `cwnd`,
`ssthresh`, `timeouts`, `srtt_ms`; forgotten after a week without attempts) and
`window:<id>:leases` (a sorted set of lease tokens by expiry). Each step is one Lua
script, so workers on several machines agree; the time is Redis's own. The Redis is the
broker's or WEBHOOKS_REDIS_URL's (a worker without one refuses to start unless
WEBHOOKS_IN_FLIGHT_WINDOW is off). Redis not answering lets the attempt go ahead, counted in
`webhooks_window_unavailable_total`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import redis

from webhooks_api import metrics
from webhooks_api.config import Settings
from webhooks_api.receivers.circuit import redis_client

logger = logging.getLogger(__name__)


class AttemptResult(Protocol):
    """What the window learns from an attempt (the worker's HttpResult has it)."""

    error_class: str | None
    duration_ms: int

INITIAL_WINDOW = 10  # TCP's initial window (RFC 6928): a new receiver gets 10 at once
MAX_WINDOW = 1000  # far above what two pools of hundreds can have in flight
STALLED_MS = 2000  # an attempt in flight this long (or four answer times) is stalled
WAIT_SECONDS = 5.0  # longest wait for a slot of a receiver that answers
STATE_TTL_MS = 7 * 24 * 3600 * 1000

GO, WAIT, DEFER = 1, 2, 0

# KEYS: state, leases. ARGV: token, lease ms, initial window, deferrals, timeout ms,
# longest delay ms, stalled ms. Returns {verdict, ms}: GO; WAIT ms; DEFER ms.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local cwnd = tonumber(redis.call('HGET', KEYS[1], 'cwnd') or ARGV[3])
if redis.call('ZCARD', KEYS[2]) < math.max(1, math.floor(cwnd)) then
    redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
    redis.call('PEXPIRE', KEYS[2], lease)
    return {1, 0}
end
local timeouts = tonumber(redis.call('HGET', KEYS[1], 'timeouts') or '0')
local srtt = tonumber(redis.call('HGET', KEYS[1], 'srtt_ms') or '0')
local delay = 1000 * 2 ^ math.min(tonumber(ARGV[4]), 30)
if timeouts > 0 then
    delay = math.max(delay, tonumber(ARGV[5]) * 2 ^ math.min(timeouts - 1, 30))
else
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    local age = now - (tonumber(oldest[2]) - lease)
    if srtt > 0 and age < math.max(tonumber(ARGV[7]), 4 * srtt) then
        return {2, math.floor(math.min(250, math.max(20, srtt / 2)))}
    elseif srtt == 0 and age >= tonumber(ARGV[7]) then
        delay = math.max(delay, tonumber(ARGV[5]))
    end
end
return {0, math.floor(math.min(delay, tonumber(ARGV[6])))}
"""

# KEYS: state, leases. ARGV: token, outcome (answer, timeout, neutral), duration ms,
# initial window, max window, state ttl ms. Returns the window after it.
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == 'neutral' then return nil end
local cwnd = tonumber(redis.call('HGET', KEYS[1], 'cwnd') or ARGV[4])
local ssthresh = tonumber(redis.call('HGET', KEYS[1], 'ssthresh') or ARGV[5])
if ARGV[2] == 'answer' then
    if cwnd < ssthresh then cwnd = cwnd + 1 else cwnd = cwnd + 1 / cwnd end
    cwnd = math.min(cwnd, tonumber(ARGV[5]))
    local srtt = tonumber(redis.call('HGET', KEYS[1], 'srtt_ms') or '0')
    local sample = tonumber(ARGV[3])
    if srtt == 0 then srtt = sample else srtt = (7 * srtt + sample) / 8 end
    redis.call('HSET', KEYS[1], 'cwnd', cwnd, 'srtt_ms', math.max(srtt, 1), 'timeouts', 0)
else
    ssthresh = math.max(tonumber(ARGV[4]), cwnd / 2)
    cwnd = 1
    redis.call('HSET', KEYS[1], 'cwnd', cwnd, 'ssthresh', ssthresh)
    redis.call('HINCRBY', KEYS[1], 'timeouts', 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return tostring(cwnd)
"""

# What an attempt's error class says about the receiver's capacity
# (webhooks_worker.delivery.http_client).
_SHRINKS = ("timeout", "connection_error")


@dataclass(frozen=True)
class Slot:
    """A lease on one place in a subscription's window (`token` None: taken without Redis,
    nothing to give back)."""

    subscription_id: str
    token: str | None


class Window:
    """The windows of one deployment (the settings give the Redis and the key prefix)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.enabled = settings.in_flight_window and settings.protection_redis_url is not None
        self._prefix = f"{settings.broker_key_prefix or ''}window:"

    def _keys(self, subscription_id: str) -> list[str]:
        state = f"{self._prefix}{subscription_id}"
        return [state, f"{state}:leases"]

    def acquire(self, subscription_id: str, timeout_seconds: int, deferrals: int
                ) -> Slot | float:
        """A slot, or the seconds to defer this attempt by (waiting here first, briefly,
        while the receiver answers)."""
        if not self.enabled:
            return Slot(subscription_id, None)
        settings = self.settings
        token = uuid.uuid4().hex
        waited_until = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                verdict, ms = redis_client(settings.protection_redis_url).eval(
                    _ACQUIRE, 2, *self._keys(subscription_id), token,
                    (timeout_seconds + settings.claim_margin_seconds) * 1000,
                    INITIAL_WINDOW, deferrals, timeout_seconds * 1000,
                    max(settings.retry_schedule) * 1000, STALLED_MS)
            except redis.RedisError as error:
                logger.warning("window of %s: Redis did not answer (%s); the attempt goes "
                               "ahead", subscription_id, error)
                metrics.WINDOW_UNAVAILABLE.inc()
                return Slot(subscription_id, None)
            if verdict == GO:
                return Slot(subscription_id, token)
            if verdict == DEFER:
                return ms / 1000
            if time.monotonic() + ms / 1000 > waited_until:  # answers, but too slowly
                return float(max(1, min(2 ** deferrals, max(settings.retry_schedule))))
            time.sleep(ms / 1000)

    def release(self, slot: Slot | None, result: AttemptResult | None) -> None:
        """Give the slot back and adapt the window to what the attempt found (no result:
        the attempt was cut short, nothing is learnt)."""
        if slot is None or slot.token is None:
            return
        error_class = "cut short" if result is None else result.error_class
        duration_ms = 0 if result is None else result.duration_ms
        outcome = ("timeout" if error_class in _SHRINKS
                   else "answer" if error_class is None else "neutral")
        try:
            window = redis_client(self.settings.protection_redis_url).eval(
                _RELEASE, 2, *self._keys(slot.subscription_id), slot.token, outcome,
                duration_ms, INITIAL_WINDOW, MAX_WINDOW, STATE_TTL_MS)
        except redis.RedisError as error:  # the lease expires by itself
            logger.warning("window of %s: Redis did not answer (%s); the slot expires by "
                           "itself", slot.subscription_id, error)
            metrics.WINDOW_UNAVAILABLE.inc()
            return
        if outcome == "timeout":
            logger.info("window of %s shrinks to %s after a %s", slot.subscription_id,
                        window.decode() if isinstance(window, bytes) else window,
                        error_class)

    def state(self, subscription_id: str) -> dict[str, float]:
        """The window's numbers and its slots in flight (for tests and operators)."""
        state_key, leases_key = self._keys(subscription_id)
        client = redis_client(self.settings.protection_redis_url)
        raw = client.hgetall(state_key)
        state = {key.decode(): float(value) for key, value in raw.items()}
        now_ms = client.time()[0] * 1000
        state["in_flight"] = client.zcount(leases_key, now_ms, "+inf")
        state.setdefault("cwnd", float(INITIAL_WINDOW))
        return state
