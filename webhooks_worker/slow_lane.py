"""Slow receivers wait on a thread of their own, not on a worker slot.

A solo replica runs one task at a time, so a receiver that hangs until its timeout holds
the whole replica: ten hanging endpoints among a hundred held all four replicas of the
Procfile's worker and delayed the healthy deliveries behind them ~100 times
(docs/PERFORMANCE.md, head-of-line). Here each POST runs on one of the process's lane
threads, and the task waits for it for a short `budget` only: a healthy receiver answers
well within it, and the task records the attempt itself as before. A receiver that has not
answered by then keeps its lane thread, which records the attempt (and sends its retry)
when the answer or the deadline comes, while the task returns and the replica takes its
next message.

Letting the message go before the attempt is recorded loses nothing: the claim, not the
message, holds the delivery. If the process dies with an attempt in flight, its claim
expires and the sweep sends the delivery again, as for a process killed mid-POST. A warm
shutdown lets the lanes finish: their threads are not daemons, so the interpreter joins
them (each bounded by its attempt's deadline) before the process exits.

A receiver that did not answer within the budget is known to be slow from then on, to
every worker: the caller marks its subscription (webhooks_worker.delivery) and passes
`known_slow` for its next attempts, which go to a lane at once, so no replica of any
worker spends a budget on it again; the record of one answer within the budget clears the
mark. Receivers that take 200 ms then get up to `slots` attempts per process in flight
instead of one per budget.

A receiver gets at most `PER_RECEIVER` lanes of a process: an attempt to a receiver that
already has them waits for its answer in its task, as without lanes. Lanes must not turn a
struggling receiver's few connections into dozens.

When every lane of the process is busy, an attempt runs in its task, as without lanes: a
process holds at most `slots` slow attempts, and a healthy receiver's answer does not wait
for a lane held by a slow one (waiting for a free lane held one task of a head-of-line run
for 0.95 s, until a hanging attempt timed out). A lane stuck outside the HTTP deadline
(name resolution) keeps its slot; a task stuck the same way passes the task time limit and
its replica is replaced (webhooks_worker.time_limit).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
PER_RECEIVER = 4


class _Attempt(Generic[Result]):
    """One POST on a lane: its result, or the work to run with it once it is handed off."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answered = threading.Event()
        self.result: Result | None = None
        self.finish_later: Callable[[Result], None] | None = None


class _Lanes:
    """This process's lane threads (a forked child builds its own: threads do not cross a
    fork)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: dict[Hashable, int] = {}  # busy lanes per receiver
        self._busy = 0  # busy lanes in all

    def _ready(self, slots: int) -> ThreadPoolExecutor:
        """This process's executor; the caller holds the lock."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._executor = ThreadPoolExecutor(slots, thread_name_prefix="slow-lane")
            self._in_flight, self._busy = {}, 0
        return self._executor

    def run(self, receiver: Hashable, work: Callable[[], Result], budget: float, slots: int,
            finish_later: Callable[[Result], None], known_slow: bool = False) -> Result | None:
        """`work()`'s result if it comes within `budget` seconds (none at all when
        `known_slow`); else None, and `finish_later(result)` runs on the lane thread
        once it does. With `PER_RECEIVER` lanes of `receiver` busy, or every lane, `work()`
        runs here."""
        with self._lock:
            executor = self._ready(slots)
            full = self._in_flight.get(receiver, 0) >= PER_RECEIVER or self._busy >= slots
            if not full:
                self._in_flight[receiver] = self._in_flight.get(receiver, 0) + 1
                self._busy += 1
        if full:  # outside the lock: the lanes finishing meanwhile need it
            return work()
        attempt: _Attempt[Result] = _Attempt()
        try:
            executor.submit(self._run, attempt, receiver, work)
        except BaseException:
            self._done(receiver)
            raise
        if attempt.answered.wait(0 if known_slow else budget):
            return attempt.result
        with attempt.lock:
            if attempt.answered.is_set():  # answered just now
                return attempt.result
            attempt.finish_later = finish_later
        return None

    def _run(self, attempt: _Attempt, receiver: Hashable, work: Callable) -> None:
        try:
            result = work()
            with attempt.lock:
                attempt.result = result
                attempt.answered.set()
                finish_later = attempt.finish_later
            if finish_later is not None:
                finish_later(result)
        except Exception:  # the claim expires and the sweep sends the delivery again
            logger.exception("a slow attempt could not be finished on its lane")
        finally:
            self._done(receiver)

    def _done(self, receiver: Hashable) -> None:
        with self._lock:
            left = self._in_flight.pop(receiver) - 1
            if left:
                self._in_flight[receiver] = left
            self._busy -= 1


lanes = _Lanes()
