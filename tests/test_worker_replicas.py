"""The Procfile's worker is N solo Celery workers under one launcher
(webhooks_worker.replicas): each replica is a node of its own, a replica that dies is
replaced and the others keep delivering, SIGTERM lets the attempts in flight finish, and a
task past the hard time limit has its replica killed and replaced."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import VAR
from tests.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    isolated_worker,
    log_offset,
    log_since,
    store_without_messages,
)
from tests.helpers import wait_for
from tests.receiver import Reply
from webhooks_api.extensions import db
from webhooks_worker.replicas import STARTUP_SECONDS, replica_command


def _replica_pids(launcher_pid: int) -> set[int]:
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def _nodes(worker) -> set[str]:
    return {name for reply in worker.client.control.ping(timeout=1) for name in reply}


def test_each_replica_gets_a_node_name_of_its_own_and_only_the_first_runs_beat():
    command = ["celery", "-A", "app", "worker", "-B", "-n", "api@%h"]
    assert replica_command(command, 1) == ["celery", "-A", "app", "worker", "-B",
                                           "-n", "api1@%h"]
    assert replica_command(command, 2) == ["celery", "-A", "app", "worker", "-n", "api2@%h"]
    assert replica_command(["celery", "worker", "--hostname=w@box"], 3) == [
        "celery", "worker", "--hostname=w3@box"]
    assert replica_command(["celery", "worker"], 4) == ["celery", "worker",
                                                        "-n", "worker4@%h"]


def _publish_and_wait(worker, tenant, receiver, marker: int) -> None:
    worker.publish(event_type="user.login", event_data={"n": marker}, tenant_id=tenant["id"])
    wait_for(lambda: any(json.loads(post.body)["data"]["n"] == marker
                         for post in receiver.posts("/hook")),
             timeout=60, message=f"event {marker} at the receiver")


def test_a_killed_replica_is_replaced_and_deliveries_go_on(client, tenant, receiver,
                                                           test_env):
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    with isolated_worker(test_env, concurrency=2) as worker:
        started = time.monotonic()  # the replicas started before this
        wait_for(lambda: len(_nodes(worker)) == 2, timeout=60, message="two nodes")
        first = _replica_pids(worker.process.pid)
        assert len(first) == 2
        _publish_and_wait(worker, tenant, receiver, 1)
        # Past start-up: a replica that dies now is replaced rather than stopping them all.
        time.sleep(max(0.0, STARTUP_SECONDS + 1 - (time.monotonic() - started)))

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: (pids := _replica_pids(worker.process.pid)) - first
                            and len(pids) == 2 and pids, timeout=30,
                            message="a new replica in place of the killed one")
        assert victim not in replaced and len(replaced & first) == 1
        assert worker.process.poll() is None
        wait_for(lambda: len(_nodes(worker)) == 2, timeout=60, message="two nodes again")
        for marker in (2, 3, 4):
            _publish_and_wait(worker, tenant, receiver, marker)


def test_sigterm_lets_the_attempt_in_flight_finish_then_every_replica_exits(
        client, tenant, receiver, test_env, session):
    """The receiver takes 2 s: the task hands the attempt to a slow lane after 10 ms and
    returns (webhooks_worker.slow_lane), and the warm shutdown waits for the lane."""
    def slow(request):
        time.sleep(2)
        return Reply(200)

    receiver.respond = slow
    subscription = create_subscription(client, tenant, f"{receiver.base_url}/slow",
                                       ["user.login"])
    offset = log_offset()
    with isolated_worker(test_env, concurrency=2) as worker:
        replicas = _replica_pids(worker.process.pid)
        worker.publish(event_type="user.login", event_data={"n": 1}, tenant_id=tenant["id"])
        wait_for(lambda: "finishing on a slow lane" in log_since(offset), timeout=60,
                 message="the slow attempt handed to a lane")
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replicas)
    [delivery] = deliveries_of(session, subscription["id"])
    assert delivery.status == "success"
    [attempt] = attempts_of(session, delivery.id)
    assert attempt.response_status == 200 and attempt.duration_ms >= 2000


@pytest.mark.parametrize("pool", ["--pool=solo", "--pool=threads"])
def test_a_task_stuck_past_the_hard_time_limit_gets_its_replica_replaced(
        app, client, tenant, receiver, test_env, pool):
    """The solo and threads pools enforce no time limit; webhooks_worker.time_limit does. A
    claim stuck behind a row lock (outside any HTTP deadline) past
    WEBHOOKS_TASK_TIME_LIMIT_SECONDS gets its replica killed and replaced; the new replica
    goes on delivering."""
    create_subscription(client, tenant, f"{receiver.base_url}/hook", ["user.login"])
    [stuck] = store_without_messages(app, tenant["id"], "user.login", {"n": 0})
    with isolated_worker(test_env, {"WEBHOOKS_TASK_TIME_LIMIT_SECONDS": "2"},
                         concurrency=1, extra_args=[pool]) as worker:
        started = time.monotonic()
        [replica] = _replica_pids(worker.process.pid)
        with app.app_context(), db.engine.connect() as holder:  # holds the row lock
            holder.execute(text("SELECT 1 FROM deliveries WHERE id = :id FOR UPDATE"),
                           {"id": stuck})
            time.sleep(max(0.0, STARTUP_SECONDS + 1 - (time.monotonic() - started)))
            worker.deliver(stuck, 1)
            [replacement] = wait_for(
                lambda: (pids := _replica_pids(worker.process.pid)) != {replica} and pids,
                timeout=30, message="the stuck replica to be replaced")
            holder.rollback()
        assert replacement != replica and worker.process.poll() is None
        log = (VAR / "test-isolated-worker.log").read_text(errors="replace")
        assert "ran past its hard time limit (2 s)" in log
        _publish_and_wait(worker, tenant, receiver, 1)
