"""Each subscription's in-flight window (webhooks_api.receivers.window) on the real Redis: it
shrinks on timeouts and connection failures, grows back on answers, defers with a delay
that grows while the receiver keeps timing out (capped by the longest scheduled delay),
and its slots are leases that come back by themselves after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.support.helpers import wait_for
from webhooks_api.config import load_settings
from webhooks_api.receivers.window import INITIAL_WINDOW, STALLED_MS, Slot, Window
from webhooks_worker.delivery.http_client import HttpResult


def _result(error_class: str | None = None, duration_ms: int = 50) -> HttpResult:
    return HttpResult(datetime.now(UTC), duration_ms, status_code=None if error_class
                      else 200, error_class=error_class)


@pytest.fixture
def window(test_env) -> Window:
    # The production schedule: its longest delay (6 h) caps every deferral.
    settings = replace(load_settings(test_env), retry_schedule=(300, 3600, 21600),
                       claim_margin_seconds=1)
    return Window(settings)


def _fill(window: Window, subscription_id: str, count: int, timeout_seconds: int = 30
          ) -> list[Slot]:
    slots = [window.acquire(subscription_id, timeout_seconds, 0) for _ in range(count)]
    assert all(isinstance(slot, Slot) for slot in slots), slots
    return slots


def test_a_new_receiver_gets_the_initial_window_then_attempts_are_deferred(window):
    subscription_id = f"sub_{uuid.uuid4().hex}"
    _fill(window, subscription_id, INITIAL_WINDOW)
    # Nothing known about it yet (no answer): deferred at once, 1 s, then doubling per
    # deferral of the same attempt.
    assert window.acquire(subscription_id, 30, 0) == 1.0
    assert window.acquire(subscription_id, 30, 3) == 8.0
    assert window.state(subscription_id)["in_flight"] == INITIAL_WINDOW


def test_over_the_window_of_a_receiver_never_heard_from_an_attempt_waits_a_timeout(window):
    subscription_id = f"sub_{uuid.uuid4().hex}"
    _fill(window, subscription_id, INITIAL_WINDOW)
    time.sleep(STALLED_MS / 1000)
    # Its oldest attempt has been in flight for STALLED_MS without an answer: nothing is
    # learnt before that attempt times out, so the deferral is the subscription's timeout
    # (a longer doubling still wins).
    assert window.acquire(subscription_id, 30, 0) == 30.0
    assert window.acquire(subscription_id, 30, 6) == 64.0


def test_the_window_shrinks_on_timeouts_and_grows_back_on_answers(window):
    subscription_id = f"sub_{uuid.uuid4().hex}"
    slots = _fill(window, subscription_id, INITIAL_WINDOW)
    window.release(slots[0], _result("timeout", 30_000))
    state = window.state(subscription_id)
    assert state["cwnd"] == 1 and state["timeouts"] == 1
    window.release(slots[1], _result("connection_error", 3))
    assert window.state(subscription_id)["timeouts"] == 2
    for slot in slots[2:]:  # given back without a verdict (DNS, TLS, cut short)
        window.release(slot, _result("dns_error"))
    assert window.state(subscription_id)["cwnd"] == 1
    assert window.state(subscription_id)["in_flight"] == 0

    # One slot only while it keeps timing out.
    [probe] = _fill(window, subscription_id, 1)
    assert isinstance(window.acquire(subscription_id, 30, 0), float)
    window.release(probe, _result(None, 120))  # it answers: slow start from 1
    state = window.state(subscription_id)
    assert state["cwnd"] == 2 and state["timeouts"] == 0 and state["srtt_ms"] == 120
    # Doubling per round of answers up to half the window it had (at least the initial
    # window), then one more slot per round.
    for expected in (4, 8, 10.6, 11.5):
        for slot in _fill(window, subscription_id, int(window.state(subscription_id)["cwnd"])):
            window.release(slot, _result(None, 120))
        assert window.state(subscription_id)["cwnd"] == pytest.approx(expected, abs=0.1)


def test_deferrals_grow_while_the_receiver_keeps_timing_out_capped_by_the_schedule(window):
    subscription_id = f"sub_{uuid.uuid4().hex}"
    [first] = _fill(window, subscription_id, 1)
    window.release(first, _result("timeout", 30_000))
    for timeouts in range(1, 12):
        [probe] = _fill(window, subscription_id, 1)  # the window is one slot now
        # Its 30 s timeout doubled per timeout in a row, never past the 6 h of the schedule.
        assert window.acquire(subscription_id, 30, 0) == min(30.0 * 2 ** (timeouts - 1),
                                                             21600.0)
        window.release(probe, _result("timeout", 30_000))


def test_over_the_window_of_a_receiver_that_answers_the_task_waits_for_a_slot(window):
    subscription_id = f"sub_{uuid.uuid4().hex}"
    for slot in _fill(window, subscription_id, INITIAL_WINDOW):
        window.release(slot, _result(None, 40))  # answers known: 40 ms
    slots = _fill(window, subscription_id, int(window.state(subscription_id)["cwnd"]))
    releaser = threading.Timer(0.3, window.release, (slots[0], _result(None, 40)))
    started = time.monotonic()
    releaser.start()
    assert isinstance(window.acquire(subscription_id, 30, 0), Slot)  # not deferred
    assert 0.25 < time.monotonic() - started < 5


def test_slots_held_by_a_sigkilled_worker_come_back_after_their_lease(window, test_env):
    """A process takes five slots (1 s timeout + 1 s margin) and is SIGKILLed holding them."""
    subscription_id = f"sub_{uuid.uuid4().hex}"
    code = (
        "import os, sys, time\n"
        "from dataclasses import replace\n"
        "from webhooks_api.config import load_settings\n"
        "from webhooks_api.receivers.window import Window\n"
        "w = Window(replace(load_settings(), claim_margin_seconds=1))\n"
        f"[w.acquire({subscription_id!r}, 1, 0) for _ in range(5)]\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **test_env},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert window.state(subscription_id)["in_flight"] == 5
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
    wait_for(lambda: window.state(subscription_id)["in_flight"] == 0, timeout=10,
             message="the killed worker's leases to expire")
    _fill(window, subscription_id, INITIAL_WINDOW)


def test_without_redis_the_attempt_goes_ahead(test_env):
    settings = replace(load_settings(test_env), broker_url="redis://127.0.0.1:1/0")
    subscription_id = f"sub_{uuid.uuid4().hex}"
    # A slot with nothing to give back, not a deferral.
    assert Window(settings).acquire(subscription_id, 5, 0) == Slot(subscription_id, None)
