"""Keep a worker's start-up objects out of the garbage collector's full passes.

A worker process holds a few hundred thousand objects from start-up (Flask, SQLAlchemy,
Celery, marshmallow, the app) that live as long as it does. CPython's full collection
(generation 2) walks every tracked object each time it runs: 80–160 ms per pause on the
2-core machine, and the Procfile's replicas, allocating alike, paused within the same
fifth of a second, so every delivery in flight waited. That was the publish → receive tail
at a steady 50 events/s (max 154 ms; docs/PERFORMANCE.md "Collector pauses").

`gc.freeze()` moves what exists then into a permanent generation that collections skip;
what tasks allocate is still collected as before. It runs once per process that runs
tasks or fetches them: a solo replica or a prefork child when its pool starts
(`worker_process_init`), a threads pool's or prefork's main process when it is ready.
"""

from __future__ import annotations

import gc
import logging

from celery.signals import worker_process_init, worker_ready

logger = logging.getLogger(__name__)


@worker_process_init.connect
def _on_pool_start(sender=None, **_) -> None:
    freeze_start_up_heap(sender)


@worker_ready.connect
def _on_ready(sender=None, **_) -> None:
    if not gc.get_freeze_count():  # not a process whose pool start froze it already
        freeze_start_up_heap(getattr(sender, "hostname", None))


def freeze_start_up_heap(node: str | None = None) -> int:
    """Collect start-up garbage, then freeze what is left; returns how many objects."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%s: %d start-up objects frozen out of full garbage collections",
                node or "worker", frozen)
    return frozen
