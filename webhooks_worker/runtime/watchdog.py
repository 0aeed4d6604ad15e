"""One thread per process (a greenlet under the gevent pool) that expires the HTTP
attempts' wall-clock deadlines (webhooks_worker.delivery.http_client).

Starting a `threading.Timer` per attempt cost a thread start each time (`Thread.start()`
waits for the new thread to run: ~1 ms on a busy machine); one thread with a heap of
(time, n, deadline) under a Condition costs a heap push.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from typing import Protocol


class Expiring(Protocol):
    """What the watchdog holds: `finished` once it no longer needs expiring (dropped when
    due), else `expire()` is called from the watchdog's thread when its time has come."""

    finished: bool

    def expire(self) -> None: ...


class Watchdog:
    """Started lazily, and again in a forked child (threads do not cross a fork)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Expiring]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def add(self, deadline: Expiring, seconds: float) -> None:
        with self._condition:
            if self._pid != os.getpid():  # first use, or a forked child: no thread here yet
                self._heap.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="deadlines",
                                                daemon=True)
                self._thread.start()
            entry = (time.monotonic() + seconds, next(self._counter), deadline)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    if self._heap and self._heap[0][2].finished:
                        heapq.heappop(self._heap)  # cancelled: finished before its time
                        continue
                    self._condition.wait(self._heap[0][0] - time.monotonic()
                                         if self._heap else None)
                _, _, deadline = heapq.heappop(self._heap)
            deadline.expire()


watchdog = Watchdog()
