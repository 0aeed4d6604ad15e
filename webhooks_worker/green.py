"""PostgreSQL calls that yield to gevent's hub, when the worker runs the gevent pool.

`celery worker --pool=gevent` monkey-patches the standard library before it imports the
app, so sockets (Redis, the receivers) yield by themselves; psycopg2 is C and waits on its
sockets inside libpq, which would stop every greenlet of the process for the length of
each statement. psycogreen installs psycopg2's wait callback, which hands those waits to
the hub (PITFALLS.md; tests/test_worker_pool.py shows one slow statement not stopping the
other deliveries of its process).
"""

from __future__ import annotations


def cooperate_with_gevent() -> bool:
    """Install the wait callback if gevent patched this process; True when it did."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    if not monkey.is_module_patched("socket"):
        return False
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return True
