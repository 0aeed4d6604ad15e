"""What the gevent pool needs of ours: PostgreSQL calls that yield to gevent's hub, a
thread for every lookup in flight, and task events sent in batches.

`celery worker --pool=gevent` monkey-patches the standard library before it imports the
app, so sockets (Redis, the receivers) yield by themselves; psycopg2 is C and waits on its
sockets inside libpq, which would stop every greenlet of the process for the length of
each statement. psycogreen installs psycopg2's wait callback, which hands those waits to
the hub (PITFALLS.md; tests/engine/test_worker_pool.py shows one slow statement not stopping the
other deliveries of its process).
"""

from __future__ import annotations

from celery import bootsteps


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


def cooperate_with_gevent() -> bool:
    """Install the wait callback if gevent patched this process; True when it did."""
    if not _gevent_patched():
        return False
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return True


class LookupThreads(bootsteps.StartStopStep):
    """As many threads for name lookups as the process may have deliveries in flight (its
    concurrency, or autoscale's maximum, as it started: Celery tells a step of no later
    `pool_grow`).

    Under gevent `getaddrinfo` runs in the hub's thread pool, 10 threads by default. A
    lookup that a receiver's name servers never answer keeps its thread until the system
    resolver gives up (10 s and more with glibc's defaults; resolv.conf may say
    minutes), even after its attempt has ended at its deadline. The window lets a new
    receiver have 10 attempts in flight: with gevent's default, one receiver with dead name
    servers would hold every delivery of the process to a receiver named by hostname
    behind its lookups (tests/engine/test_engine_http.py). The pool starts a thread only
    when a lookup waits for one, so an idle process has no more threads than with it.
    """

    requires = ("celery.worker.components:Pool",)

    def start(self, w):
        if _gevent_patched():
            from gevent import get_hub

            threads = get_hub().threadpool
            threads.maxsize = max(threads.maxsize, w.max_concurrency or w.concurrency)


class BufferedTaskEvents(bootsteps.StartStopStep):
    """Task events sent in batches under the gevent pool, as Celery sends them with an event
    loop (prefork, threads: `task.multi`, up to 24 events a message).

    Celery buffers task events only when the consumer has an event loop ("XXX This
    excludes eventlet/gevent, which should actually buffer", celery/worker/consumer/
    events.py); under gevent each received, started and succeeded event was a Redis PUBLISH
    of its own: 23 % of a worker's CPU in a profile of the 1-subscription benchmark. Here
    the dispatcher buffers them, and a timer sends what is buffered every
    `FLUSH_SECONDS`, so Flower sees a task at most that much later.
    """

    requires = ("celery.worker.consumer.events:Events",)
    FLUSH_SECONDS = 0.1

    def __init__(self, c, **kwargs):
        self._timer = None
        super().__init__(c, **kwargs)

    def start(self, c):
        dispatcher = c.event_dispatcher
        if c.hub is not None or not getattr(c.pool, "is_green", False) or dispatcher is None:
            return
        dispatcher.buffer_group = frozenset(["task"])
        self._timer = c.timer.call_repeatedly(self.FLUSH_SECONDS, self._flush, (c,))

    @staticmethod
    def _flush(c) -> None:
        if c.event_dispatcher is not None:
            c.event_dispatcher.flush(errors=False)

    def stop(self, c):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush(c)

    shutdown = stop
