"""A worker's start-up objects frozen out of full collections (webhooks_api.heap says why),
once per process that runs or fetches tasks: a prefork child when its pool starts
(`worker_process_init`), a gevent, threads or prefork main process when it is ready
(`worker_ready`)."""

from __future__ import annotations

import gc

from celery.signals import worker_process_init, worker_ready

from webhooks_api.heap import freeze_start_up_heap


@worker_process_init.connect
def _on_pool_start(sender=None, **_) -> None:
    freeze_start_up_heap(sender or "worker")


@worker_ready.connect
def _on_ready(sender=None, **_) -> None:
    if not gc.get_freeze_count():  # not a process whose pool start froze it already
        freeze_start_up_heap(getattr(sender, "hostname", None) or "worker")
