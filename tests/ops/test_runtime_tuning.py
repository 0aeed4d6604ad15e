"""What keeps pauses and per-message CPU down: the start-up objects of every worker and
web process frozen out of full garbage collections (webhooks_api/heap.py), and the broker
client's replies parsed in C (hiredis)."""

from __future__ import annotations

import gc
import re
import time

import redis.connection
import redis.utils

from tests.conftest import VAR, answers_ping, node_name
from tests.support.helpers import wait_for
from tests.support.processes import web
from webhooks_api.heap import freeze_start_up_heap

_FROZEN = re.compile(r"(\S+): (\d+) start-up objects frozen out of full garbage collections")


def _full_collection_seconds(rounds: int = 3) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_the_session_worker_froze_its_start_up_objects(app, worker):
    assert answers_ping(app.extensions["celery"], worker)
    frozen = {node: int(count) for node, count in
              _FROZEN.findall((VAR / "test-worker.log").read_text(errors="replace"))}
    assert node_name(worker) in frozen, frozen
    # Flask, SQLAlchemy, Celery and the app: hundreds of thousands of objects.
    assert frozen[node_name(worker)] > 100_000, frozen


def test_each_gunicorn_worker_froze_its_start_up_objects(test_env):
    log = VAR / "test-web.log"
    written_before = log.stat().st_size if log.exists() else 0
    with web(test_env, workers=2):
        def booted_and_frozen():
            text = log.read_bytes()[written_before:].decode(errors="replace")
            booted = set(re.findall(r"Booting worker with pid: (\d+)", text))
            frozen = {pid: int(count) for pid, count in
                      re.findall(r"gunicorn worker (\d+): (\d+) start-up objects", text)}
            return len(booted) == 2 and booted <= frozen.keys() and frozen
        frozen = wait_for(booted_and_frozen, timeout=30, message="both workers frozen")
    assert all(count > 100_000 for count in frozen.values()), frozen


def test_a_full_collection_skips_what_was_frozen(app):
    before = _full_collection_seconds()
    try:
        assert freeze_start_up_heap("pytest") > 100_000
        after = _full_collection_seconds()
    finally:
        gc.unfreeze()
    # Measured ~10-50x faster; a generous margin for a loaded machine.
    assert after < before / 3, (before, after)


def test_the_broker_client_parses_replies_with_hiredis(app):
    """hiredis is installed where redis-py finds it, and the broker's client keeps
    redis-py's default parser, which is then hiredis's."""
    assert redis.utils.HIREDIS_AVAILABLE
    with app.extensions["celery"].connection_for_write() as connection:
        pool = connection.default_channel.client.connection_pool
        assert pool.connection_kwargs.get("parser_class",
                                          redis.connection.DefaultParser) \
            is redis.connection.DefaultParser
