"""The hard time limit (`task_time_limit`) where the pool does not enforce it.

Prefork kills a child whose task runs past `task_time_limit`, and starts another. The
Procfile's worker is solo replicas (webhooks_worker.replicas): a task runs in the worker's
own thread, where Celery enforces no time limit at all. There each task arms the process's
watchdog; a task still running at the limit (stuck outside the HTTP deadline: name
resolution, a lock wait) gets its replica killed with SIGKILL, and the launcher starts a
new one, as prefork replaces a child. Nothing is lost: the message is acknowledged late,
and the delivery's claim expires, so the sweep sends it again.
"""

from __future__ import annotations

import logging
import os
import signal

from celery import concurrency, signals
from celery.concurrency.solo import TaskPool as SoloPool

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
    """Armed by `worker_init` when this worker's pool is solo; one task at a time."""

    def __init__(self):
        self.armed = False
        self.running: _TaskLimit | None = None


_enforcer = _Enforcer()


@signals.worker_init.connect
def _arm_under_solo(sender=None, **_) -> None:
    _enforcer.armed = issubclass(concurrency.get_implementation(sender.pool_cls), SoloPool)


@signals.task_prerun.connect
def _start(task_id=None, task=None, **_) -> None:
    seconds = task.time_limit or task.app.conf.task_time_limit
    if _enforcer.armed and seconds:
        _enforcer.running = _TaskLimit(task.name, task_id, seconds)
        watchdog.add(_enforcer.running, seconds)


@signals.task_postrun.connect
def _stop(**_) -> None:
    if _enforcer.running is not None:
        _enforcer.running.finished = True
        _enforcer.running = None
