"""The hard time limit (`task_time_limit`) where the pool does not enforce it.

Prefork kills a child whose task runs past `task_time_limit`, and starts another. The
Procfile's worker is solo replicas (webhooks_worker.replicas), and a replica may run the
threads pool instead (docs/operations.md): tasks run in the worker's
own process, where Celery enforces no time limit at all. There each task arms the
process's watchdog; a task still running at the limit (stuck outside the HTTP deadline:
name resolution, a lock wait) gets its replica killed with SIGKILL, and the launcher starts
a new one, as prefork replaces a child. Nothing is lost: messages are acknowledged late,
and the claims of the deliveries in flight expire, so the sweep sends them again.
"""

from __future__ import annotations

import logging
import os
import signal

from celery import concurrency, signals
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadsPool

from .watchdog import watchdog

logger = logging.getLogger(__name__)


class _TaskLimit:
    def __init__(self, task_name: str, task_id: str, seconds: float):
        self.finished = False
        self.task_name, self.task_id, self.seconds = task_name, task_id, seconds

    def expire(self) -> None:
        if self.finished:
            return
        logger.critical("task %s[%s] ran past its hard time limit (%g s): killing this "
                        "worker process; its delivery is swept once the claim expires",
                        self.task_name, self.task_id, self.seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


class _Enforcer:
    """Armed by `worker_init` when this worker's pool runs tasks in its own process."""

    def __init__(self):
        self.armed = False
        self.running: dict[str, _TaskLimit] = {}  # by task id


_enforcer = _Enforcer()


@signals.worker_init.connect
def _arm_in_process_pools(sender=None, **_) -> None:
    _enforcer.armed = issubclass(concurrency.get_implementation(sender.pool_cls),
                                 (SoloPool, ThreadsPool))


@signals.task_prerun.connect
def _start(task_id=None, task=None, **_) -> None:
    seconds = task.time_limit or task.app.conf.task_time_limit
    if _enforcer.armed and seconds:
        limit = _enforcer.running[task_id] = _TaskLimit(task.name, task_id, seconds)
        watchdog.add(limit, seconds)


@signals.task_postrun.connect
def _stop(task_id=None, **_) -> None:
    limit = _enforcer.running.pop(task_id, None)
    if limit is not None:
        limit.finished = True
