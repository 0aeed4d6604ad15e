"""What keeps a worker's pauses and per-message CPU down: its start-up objects frozen out
of full garbage collections (webhooks_worker/heap.py), and the broker client's replies
parsed in C (hiredis)."""

from __future__ import annotations

import gc
import re
import time

from tests.conftest import VAR
from webhooks_worker.heap import freeze_start_up_heap

_FROZEN = re.compile(r"(\S+): (\d+) start-up objects frozen out of full garbage collections")


def _full_collection_seconds(rounds: int = 3) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_each_replica_of_the_session_worker_froze_its_start_up_objects(app, worker):
    nodes = {name for reply in app.extensions["celery"].control.ping(timeout=1)
             for name in reply}
    frozen = {node: int(count) for node, count in
              _FROZEN.findall((VAR / "test-worker.log").read_text(errors="replace"))}
    assert nodes and nodes <= frozen.keys(), (nodes, frozen)
    # Flask, SQLAlchemy, Celery and the app: hundreds of thousands of objects.
    assert all(frozen[node] > 100_000 for node in nodes), frozen


def test_a_full_collection_skips_what_was_frozen(app):
    before = _full_collection_seconds()
    try:
        assert freeze_start_up_heap() > 100_000
        after = _full_collection_seconds()
    finally:
        gc.unfreeze()
    # Measured ~10-50x faster; a generous margin for a loaded machine.
    assert after < before / 3, (before, after)


def test_the_broker_client_parses_replies_with_hiredis(app):
    with app.extensions["celery"].connection_for_write() as connection:
        pool = connection.default_channel.client.connection_pool
        redis_connection = pool.get_connection()
        try:
            assert "Hiredis" in type(redis_connection._parser).__name__
        finally:
            pool.release(redis_connection)
