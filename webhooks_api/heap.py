"""Keep a long-lived process's start-up objects out of the garbage collector's full passes.

A worker or web process holds a few hundred thousand objects from start-up (Flask,
SQLAlchemy, Celery, marshmallow, the app) that live as long as it does. CPython's full
collection (generation 2) walks every tracked object each time it runs: 80–160 ms per
pause on the 2-core machine. Worker processes, allocating alike, paused within the same
fifth of a second, so every delivery in flight waited: that was the
publish → receive tail at a steady 50 events/s (max 154 ms); a gunicorn worker's pause
is a `POST /publish` of 100 ms (docs/decisions/0007-frozen-start-up-heap.md).

`gc.freeze()` moves what exists then into a permanent generation that collections skip;
what requests and tasks allocate is still collected as before. Called once per process,
when it is ready to serve: webhooks_worker.runtime.heap (Celery signals) and gunicorn's
`post_worker_init` (webhooks_api.http.gunicorn_conf).
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_start_up_heap(process: str) -> int:
    """Collect start-up garbage, then freeze what is left; returns how many objects."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%s: %d start-up objects frozen out of full garbage collections",
                process, frozen)
    return frozen
