"""gunicorn settings of the `web` process (Procfile: `--config python:webhooks_api.gunicorn_conf`).

With PROMETHEUS_MULTIPROC_DIR set, each gunicorn worker writes its metrics to files there;
when a worker exits its live-gauge files must go, or /metrics would keep counting a
process that no longer exists (prometheus_client's multiprocess guidance).
"""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
