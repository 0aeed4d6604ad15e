"""A subscription stopped while the engine works on it: a fan-out racing a pause, a delete
or the service's disable (410) leaves no delivery `pending`, and an attempt in flight when
a pause commits is recorded with what the receiver answered, with no attempt after it."""

from __future__ import annotations

import threading

import pytest

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    execute,
    send_deliver,
    store_without_messages,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.extensions import db
from webhooks_api.services.events import new_event
from webhooks_worker.delivery.attempt import attempt_delivery
from webhooks_worker.publishing.fanout import store_and_fan_out

ROUNDS = 40
# Fan-outs run back to back from the barrier on: the stop commits while some of them run.
FAN_OUTS_PER_ROUND = 15


def _fan_out_new(app, tenant_id: str, n: int) -> None:
    """The worker's path for `publish.delay()` with full arguments: one statement."""
    new = new_event(db.session, app.config["WEBHOOKS_SETTINGS"], tenant_id,
                    "invoice.created", {"n": n})
    store_and_fan_out(new)


def _fan_out_stored(app, tenant_id: str, n: int) -> None:
    """The worker's path for an event stored first (the API's `POST /publish`)."""
    store_without_messages(app, tenant_id, data={"n": n})


def _stopper(app, client, tenant, receiver, subscription_id: str, how: str):
    """What stops the subscription, as a call: the tenant pauses or deletes it, or an
    attempt that the receiver answers 410 makes the service disable it."""
    path = f"/api/v1/webhooks/subscriptions/{subscription_id}"
    if how == "pause":
        return lambda: client.patch(path, headers=tenant["headers"],
                                    json={"is_active": False}).status_code == 200
    if how == "delete":
        return lambda: client.delete(path, headers=tenant["headers"]).status_code == 204
    receiver.respond = lambda request: Reply(410)
    [delivery_id] = store_without_messages(app, tenant["id"])

    def gone() -> bool:
        with app.app_context():
            return attempt_delivery(db.session, app.config["WEBHOOKS_SETTINGS"],
                                    delivery_id, 1, "automatic").status == "disabled"
    return gone


def _race(app, tenant, stop, fan_out) -> None:
    """The stop and a run of fan-outs, both released by one barrier."""
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def fan_outs():
        try:
            with app.app_context():
                barrier.wait(10)
                for n in range(FAN_OUTS_PER_ROUND):
                    fan_out(app, tenant["id"], n)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    thread = threading.Thread(target=fan_outs)
    thread.start()
    barrier.wait(10)
    stopped = stop()
    thread.join(60)
    assert not failures, failures
    assert stopped


@pytest.mark.parametrize("how", ["pause", "delete", "gone"])
@pytest.mark.parametrize("fan_out", [_fan_out_new, _fan_out_stored], ids=["new", "stored"])
def test_a_fan_out_racing_a_stop_leaves_no_delivery_pending(app, client, tenant, session,
                                                            receiver, how, fan_out):
    pending_rounds = straddled_rounds = 0
    for _ in range(ROUNDS):
        subscription_id = create_subscription(client, tenant, receiver.url)["id"]
        stop = _stopper(app, client, tenant, receiver, subscription_id, how)
        before = len(deliveries_of(session, subscription_id))
        _race(app, tenant, stop, fan_out)
        made = deliveries_of(session, subscription_id)[before:]
        session.rollback()
        statuses = [d.status for d in made]
        assert set(statuses) <= {"pending", "disabled"}, statuses
        pending_rounds += "pending" in statuses
        # A fan-out before the stop made a delivery that the stop disabled (and ended); one
        # after it made none, or one `disabled` from the start (a disabled subscription's).
        fanned_before = any(d.completed_at is not None for d in made)
        fanned_after = len(made) < FAN_OUTS_PER_ROUND or any(
            d.status == "disabled" and d.completed_at is None for d in made)
        straddled_rounds += fanned_before and fanned_after
    print(f"\n{how}, {fan_out.__name__}: {straddled_rounds} of {ROUNDS} stops landed "
          f"among the fan-outs; {pending_rounds} left a delivery pending")
    assert pending_rounds == 0, (
        f"{pending_rounds} of {ROUNDS} rounds left a delivery pending after the {how}")
    # The stop did land among the fan-outs (else this test proves nothing).
    assert straddled_rounds >= ROUNDS // 4, straddled_rounds


@pytest.mark.parametrize(("attempt", "answer", "final_status"), [
    (1, 200, "success"), (1, 500, "disabled"), (4, 500, "failed")])
def test_an_attempt_in_flight_when_the_pause_commits_keeps_what_the_receiver_answered(
        app, client, tenant, receiver, worker, task_events, session, attempt, answer,
        final_status):
    """Delivered: `success`, not `disabled` (a replay would send it again). Failed with a
    retry due: `disabled`, and no retry is sent to the paused subscription. Failed on the
    schedule's last attempt (4 of 4): `failed`, as without the pause."""
    release = receiver.hold("/held", reply=Reply(answer))
    created = create_subscription(client, tenant, f"{receiver.base_url}/held")
    [delivery_id] = store_without_messages(app, tenant["id"])
    execute(app, "UPDATE deliveries SET attempt_count = :made WHERE id = :id",
            made=attempt - 1, id=delivery_id)
    task_id = send_deliver(app.extensions["celery"], delivery_id, attempt)
    try:
        wait_for(lambda: receiver.posts("/held"), message="the attempt at the receiver")
        paused = client.patch(f"/api/v1/webhooks/subscriptions/{created['id']}",
                              headers=tenant["headers"], json={"is_active": False})
        assert (paused.status_code, paused.json["status"]) == (200, "paused")
        # The pause committed while the receiver still holds its answer.
        assert [d.status for d in deliveries_of(session, created["id"])] == ["disabled"]
        session.rollback()
    finally:
        release.set()
    [finished] = task_events.wait_finished(task_id)
    assert finished["type"] == "task-succeeded"  # ended there: not retried
    shown = client.get(f"/api/v1/webhooks/deliveries/{delivery_id}",
                       headers=tenant["headers"]).json
    assert (shown["status"], shown["attempt_count"], shown["next_retry_at"]) == (
        final_status, attempt, None)
    assert [a["response_status"] for a in shown["attempts"]] == [answer]
    assert len(receiver.posts("/held")) == 1
