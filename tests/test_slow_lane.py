"""Slow receivers finish on a lane thread (webhooks_worker.slow_lane): a receiver that hangs
until its timeout no longer holds the worker that took its message, its attempt is still
recorded and its retry still sent, and a worker's lanes share a few database connections."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import text

from tests.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    isolated_worker,
    log_offset,
    log_since,
)
from tests.helpers import wait_for
from tests.receiver import Reply
from webhooks_api.config import ConfigError, load_settings
from webhooks_api.extensions import db
from webhooks_api.models import Subscription
from webhooks_worker import prepared
from webhooks_worker.delivery import _CLAIM
from webhooks_worker.slow_lane import PER_RECEIVER, _Lanes

TIMEOUT_SECONDS = 5  # the shortest a subscription may have
HANDED_OFF = "finishing on a slow lane"


@pytest.mark.parametrize("slow_receiver_ms", ["10", "0"])
def test_a_hanging_receiver_holds_a_lane_not_the_worker(
        client, tenant, receiver, test_env, session, slow_receiver_ms):
    """One solo replica. The first attempt to /hang hangs past its 5 s timeout; an event to
    a healthy receiver published meanwhile arrives at once with lanes, and only after the
    hanging attempt's timeout without them (WEBHOOKS_SLOW_RECEIVER_MS=0). Either way the
    timed-out attempt is recorded and its retry (1 s schedule) is sent and succeeds."""
    hung = threading.Event()

    def respond(request):
        if request.path == "/hang" and not hung.is_set():
            hung.set()
            time.sleep(TIMEOUT_SECONDS + 1)
        return Reply(200)

    receiver.respond = respond
    hanging = create_subscription(client, tenant, f"{receiver.base_url}/hang", ["invoice.voided"],
                                  timeout_seconds=TIMEOUT_SECONDS)
    create_subscription(client, tenant, f"{receiver.base_url}/healthy", ["user.login"])
    lanes, offset = slow_receiver_ms != "0", log_offset()
    with isolated_worker(test_env, {"WEBHOOKS_SLOW_RECEIVER_MS": slow_receiver_ms,
                                    "WEBHOOKS_RETRY_SCHEDULE": "1"}, concurrency=1) as worker:
        worker.publish(event_type="invoice.voided", event_data={}, tenant_id=tenant["id"])
        assert hung.wait(30), "the hanging attempt never started"
        published = time.monotonic()
        worker.publish(event_type="user.login", event_data={}, tenant_id=tenant["id"])
        wait_for(lambda: receiver.posts("/healthy"), timeout=60, message="the healthy POST")
        waited = time.monotonic() - published
        if lanes:
            assert waited < 2.5, f"the healthy event waited {waited:.1f} s behind the hang"
        else:
            assert waited > TIMEOUT_SECONDS - 1.5, f"no lanes, yet it waited only {waited:.1f} s"

        [delivery] = wait_for(
            lambda: [d for d in deliveries_of(session, hanging["id"]) if d.status == "success"],
            timeout=60, message="the hanging delivery's retry to succeed")
        first, second = attempts_of(session, delivery.id)
        assert (first.error_class, second.response_status) == ("timeout", 200)
        assert len(receiver.posts("/hang")) == 2
    assert (HANDED_OFF in log_since(offset)) == lanes


def test_the_budget_and_the_slots_are_settings_with_bounds():
    defaults = load_settings({})
    assert (defaults.slow_receiver_ms, defaults.slow_receiver_slots) == (10, 64)
    chosen = load_settings({"WEBHOOKS_SLOW_RECEIVER_MS": "0", "WEBHOOKS_SLOW_RECEIVER_SLOTS": "4"})
    assert (chosen.slow_receiver_ms, chosen.slow_receiver_slots) == (0, 4)
    for name, value in (("WEBHOOKS_SLOW_RECEIVER_MS", "-1"),
                        ("WEBHOOKS_SLOW_RECEIVER_SLOTS", "0"),
                        ("WEBHOOKS_SLOW_RECEIVER_MS", "0.5")):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})


def test_lanes_return_a_quick_result_and_finish_a_slow_one_on_the_lane():
    lanes, finished = _Lanes(), []
    assert lanes.run("r", lambda: "quick", 1.0, 2, finished.append) == "quick"

    def slow():
        time.sleep(0.5)
        return "slow"

    started = time.monotonic()
    assert lanes.run("r", slow, 0.05, 2, lambda result: finished.append(
        (result, threading.current_thread().name))) is None
    assert time.monotonic() - started < 0.4  # the caller did not wait for it
    [(result, thread)] = wait_for(lambda: finished, timeout=5, message="the slow work")
    assert result == "slow" and thread.startswith("slow-lane")


def test_a_receiver_known_to_be_slow_goes_to_a_lane_at_once():
    lanes, finished = _Lanes(), []
    BUDGET = 0.5  # wide, so a loaded machine cannot blur "at once" and "after it"

    def taking(seconds: float):
        def work():
            time.sleep(seconds)
            return seconds
        return work

    started = time.monotonic()
    assert lanes.run("slow", taking(0.8), BUDGET, 2, finished.append) is None
    assert time.monotonic() - started >= BUDGET  # not known: the budget was spent on it
    started = time.monotonic()
    assert lanes.run("slow", taking(0.8), BUDGET, 2, finished.append, known_slow=True) is None
    assert time.monotonic() - started < BUDGET / 2  # known: none
    wait_for(lambda: finished == [0.8, 0.8], timeout=5, message="both slow answers")


def test_every_worker_knows_a_slow_receiver_until_it_answers_in_time(
        client, tenant, receiver, test_env, session):
    """The first attempt to a receiver that answers after 1 s waits the 300 ms budget and is
    handed off; a worker started afterwards (a new process: it remembers nothing) hands the
    next attempt off at once, from the subscription row alone. Once the receiver answers in
    time, that answer clears the row, and the attempt after it is not handed off."""
    slow = threading.Event()
    slow.set()

    def respond(request):
        if slow.is_set():
            time.sleep(1.0)
        return Reply(200)

    receiver.respond = respond
    subscription = create_subscription(client, tenant, f"{receiver.base_url}/late",
                                       ["invoice.created"], timeout_seconds=TIMEOUT_SECONDS)
    offset, env = log_offset(), {"WEBHOOKS_SLOW_RECEIVER_MS": "300"}

    def slow_since():
        session.expire_all()
        return session.get(Subscription, subscription["id"]).slow_since

    def publish_and_wait(worker, count: int) -> str:
        worker.publish(event_type="invoice.created", event_data={}, tenant_id=tenant["id"])
        [*_, delivery] = wait_for(
            lambda: [d for d in deliveries_of(session, subscription["id"])
                     if d.status == "success"][count - 1:],
            timeout=60, message=f"success number {count}")
        return f"delivery {delivery.id} attempt 1: the receiver is slow"

    with isolated_worker(test_env, env) as worker:
        first = publish_and_wait(worker, 1)
    assert f"{first} (no answer within 300 ms)" in log_since(offset)
    assert slow_since() is not None

    second_worker = log_offset()
    with isolated_worker(test_env, env) as worker:
        second = publish_and_wait(worker, 2)
        assert f"{second} (known to answer late)" in log_since(offset)
        [waited, *_] = re.findall(r"succeeded in ([\d.]+)s: 'in_flight'", log_since(second_worker))
        assert float(waited) < 0.15, f"its task waited {waited} s for an answer"
        slow.clear()
        third = publish_and_wait(worker, 3)  # handed off at once, answers in time
        assert f"{third} (known to answer late)" in log_since(offset)
        assert slow_since() is None
        fourth = publish_and_wait(worker, 4)
    assert fourth not in log_since(offset)


def test_with_every_lane_busy_an_attempt_runs_in_its_task():
    """With the one slot busy on slow work, the next run does not wait for it: it runs in
    the caller's thread and returns its answer."""
    lanes = _Lanes()

    def slow():
        time.sleep(0.6)
        return "slow"

    assert lanes.run("a", slow, 0.01, 1, lambda result: None) is None
    started = time.monotonic()
    assert lanes.run("b", threading.current_thread, 1.0, 1, lambda result: None) is \
        threading.current_thread()
    assert time.monotonic() - started < 0.3


def test_a_receiver_gets_at_most_its_share_of_the_lanes():
    """With PER_RECEIVER lanes of one receiver busy, its next attempt runs in the caller's
    thread and returns its answer; another receiver still gets a lane."""
    lanes = _Lanes()

    def slow():
        time.sleep(0.5)
        return threading.current_thread().name

    for _ in range(PER_RECEIVER):
        assert lanes.run("busy", slow, 0.01, 16, lambda result: None) is None
    assert lanes.run("busy", slow, 0.01, 16, lambda result: None) == \
        threading.current_thread().name
    assert lanes.run("other", slow, 0.01, 16, lambda result: None) is None


def test_an_attempt_run_in_its_task_holds_no_lock_over_the_lanes():
    """While one receiver's attempt waits in its caller (its lanes full), another thread's
    attempt to another receiver still gets a lane and its answer at once."""
    lanes = _Lanes()

    def slow():
        time.sleep(1.0)
        return "slow"

    for _ in range(PER_RECEIVER):
        assert lanes.run("busy", slow, 0.01, 16, lambda result: None) is None
    answered_after: list[float] = []

    def other_receiver():
        started = time.monotonic()
        assert lanes.run("other", lambda: "quick", 1.0, 16, lambda result: None) == "quick"
        answered_after.append(time.monotonic() - started)

    def inline():
        thread = threading.Thread(target=other_receiver)
        thread.start()
        thread.join(5)
        return "inline"

    assert lanes.run("busy", inline, 0.01, 16, lambda result: None) == "inline"
    assert answered_after and answered_after[0] < 0.5, answered_after


def _backends_that_ran(app, marker: str) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE :pattern"),
            {"pattern": f"EXECUTE webhooks_claim%{marker}%"}).scalar_one()


def test_lanes_borrow_a_kept_connection_instead_of_each_keeping_one(app):
    """Two live threads run a statement one after the other, each inside
    `borrowed_connection`: the second reuses the backend the first gave back, so no backend
    is left holding the first one's statement."""
    done_first, finish = threading.Event(), threading.Event()

    def claim_nothing(marker: str, then: threading.Event | None = None):
        with app.app_context(), prepared.borrowed_connection():
            prepared.run(_CLAIM, {"delivery_id": marker, "attempt_number": 1, "manual": False,
                                  "claim_margin": 1, "early_slack": 1}).all()
        if then is not None:
            then.set()
            finish.wait(10)  # stays alive, as a lane thread does

    first = threading.Thread(target=claim_nothing, args=("dlv_borrow_first", done_first))
    first.start()
    assert done_first.wait(10)
    second = threading.Thread(target=claim_nothing, args=("dlv_borrow_second",))
    second.start()
    second.join(10)
    try:
        assert _backends_that_ran(app, "dlv_borrow_second") == 1
        assert _backends_that_ran(app, "dlv_borrow_first") == 0
    finally:
        finish.set()
        first.join(10)
