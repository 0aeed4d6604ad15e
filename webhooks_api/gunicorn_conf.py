"""gunicorn settings of the `web` process (Procfile: `--config python:webhooks_api.gunicorn_conf`).

With PROMETHEUS_MULTIPROC_DIR set, each gunicorn worker writes its metrics to files there;
when a worker exits its live-gauge files must go, or /metrics would keep counting a
process that no longer exists (prometheus_client's multiprocess guidance).

Each worker freezes its start-up objects out of full garbage collections once the app is
loaded (webhooks_api.heap: a full pass over them was a 100 ms request).
"""

from __future__ import annotations

import os

from webhooks_api.heap import freeze_start_up_heap


def post_worker_init(worker) -> None:
    freeze_start_up_heap(f"gunicorn worker {worker.pid}")


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
