"""The task floor: how many no-op `webhooks.deliver` tasks the Procfile's worker runs per second.

The Procfile's worker line with `-A bench.noop_app` instead of the real app, started as many
times as the real one (bench/stack.py), on a broker prefix of its own. N messages are queued
before it starts; the rate is N over the time from its first fetch to an empty queue with
nothing left unacknowledged. The 1-subscription shape needs two tasks per delivery (publish,
deliver), so its end-to-end rate cannot pass half of this floor whatever the engine does
inside the tasks.
"""

from __future__ import annotations

import time

import redis

from bench import stack
from webhooks_api.messaging.names import DELIVER_QUEUE

REAL_APP = "-A webhooks_worker.celery_app"


def floor(bench) -> None:
    from bench.noop_app import app

    prefix = f"{bench.env['WEBHOOKS_BROKER_KEY_PREFIX']}floor-"
    app.conf.update(broker_transport_options={**bench.settings.broker_transport_options,
                                              "global_keyprefix": prefix})
    count = bench.sizes["floor_tasks"]
    with app.producer_or_acquire() as producer:
        for index in range(count):
            app.send_task("webhooks.deliver", kwargs={
                "delivery_id": f"dlv_floor_{index:07d}", "attempt_number": 1,
                "trigger": "automatic"}, producer=producer)
    client = redis.Redis.from_url(bench.env["CELERY_BROKER_URL"])
    queue, unacked = f"{prefix}{DELIVER_QUEUE}", f"{prefix}unacked"
    command = stack.worker_line(bench.env)
    if REAL_APP not in command:
        raise RuntimeError(f"the Procfile's worker line no longer says {REAL_APP!r}")
    worker = stack.WorkerProcesses(
        {**bench.env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix}, "worker-floor",
        bench.worker_args, command=command.replace(REAL_APP, "-A bench.noop_app"))
    try:
        stack.wait_until(lambda: client.llen(queue) < count, 120,
                         "the no-op worker's first fetch", interval=0.005)
        started = time.monotonic()
        stack.wait_until(lambda: client.llen(queue) == 0 and client.hlen(unacked) == 0,
                         120 + count / 50, "the no-op tasks to finish", interval=0.01)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
        client.close()
        stack.delete_broker_keys(bench.env["CELERY_BROKER_URL"], prefix)
    bench.figures["task_floor_per_s"] = round(count / elapsed, 1)
    bench.details["floor"] = {"tasks": count, "seconds": round(elapsed, 3),
                              "worker_command": worker.expanded, **worker.pool()}
