"""gunicorn settings of the `web` process
(Procfile: `--config python:webhooks_api.http.gunicorn_conf`).

Worker class: gunicorn's threaded worker (webhooks_api.http.gunicorn_worker), `--threads` per
process (Procfile `WEB_THREADS`). A request that waits (`POST /subscriptions/{id}/test`
waits up to WEBHOOKS_TEST_EVENT_WAIT_SECONDS for a worker's attempt) holds one thread, not
the process; those waits are bounded per process (WEBHOOKS_TEST_EVENT_MAX_WAITING), and a
worker whose threads would not outnumber that bound refuses to start, so some threads
are always left for every other request (docs/decisions/0013-test-event-waits.md).

Request limits, set on purpose: a request line (method, path and query) up to 8190 bytes,
gunicorn's most, is far beyond any URL of the API (an opaque cursor and a few filters);
at most 100 header fields of 8190 bytes each. Past them gunicorn answers 414 or 431, in
the API's JSON error shape (the worker class), before the app sees the request.

The access log (Procfile `--access-logfile -`) keeps gunicorn's default format: the
request line, never a request header's value (the Authorization header carries API keys
and portal session tokens; the portal's token is in the URL's fragment, which no browser
sends).

With PROMETHEUS_MULTIPROC_DIR set, each gunicorn worker writes its metrics to files there;
when a worker exits its live-gauge files must go, or /metrics would keep counting a
process that no longer exists (prometheus_client's multiprocess guidance).

Each worker freezes its start-up objects out of full garbage collections once the app is
loaded (webhooks_api.heap: a full pass over them was a 100 ms request).

With tracing configured (webhooks_api.tracing) each worker starts exporting once its app is
loaded, after the fork (a span processor's thread does not survive one), and exports what
it still holds when it exits.
"""

from __future__ import annotations

import os

from webhooks_api import tracing
from webhooks_api.heap import freeze_start_up_heap

SERVICE_NAME = "webhooks-api"  # the traces' service.name unless OTEL_SERVICE_NAME is set
worker_class = "webhooks_api.http.gunicorn_worker.ApiWorker"
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def post_worker_init(worker) -> None:
    _check_threads_outnumber_waits(worker)
    tracing.start(worker.wsgi.config["WEBHOOKS_SETTINGS"], SERVICE_NAME, worker.wsgi)
    freeze_start_up_heap(f"gunicorn worker {worker.pid}")


def worker_exit(server, worker) -> None:
    tracing.stop()


def _check_threads_outnumber_waits(worker) -> None:
    max_waiting = worker.wsgi.config["WEBHOOKS_SETTINGS"].test_event_max_waiting
    if worker.cfg.threads <= max_waiting:
        raise RuntimeError(
            f"gunicorn runs {worker.cfg.threads} threads per worker, not more than the "
            f"{max_waiting} test events that may wait at once (WEBHOOKS_TEST_EVENT_MAX_WAITING): "
            "waiting tests could hold every thread; raise --threads (WEB_THREADS) or lower "
            "WEBHOOKS_TEST_EVENT_MAX_WAITING")


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
