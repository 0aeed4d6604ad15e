"""Issue 22 item 11: a publish message processed twice stores one event, and a message held
by a worker that dies comes back within minutes while a held countdown of hours is never
handed out twice (docs/decisions/0011-held-message-visibility.md).

"Twice" is what a redelivery does: the same message, with the same task id, reaches a
worker again. The first test re-sends a message exactly as it was published (same task id,
same arguments) to the session worker; the others SIGKILL real worker processes and let
Redis hand their messages out again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from celery.signals import before_task_publish
from sqlalchemy import func, select

from tests.engine_support import create_subscription, deliveries_of, publish_via_api
from tests.helpers import wait_for
from webhooks_api.bus import get_event_bus
from webhooks_api.ids import ID_PATTERN, derived_id, new_id
from webhooks_api.models import Delivery, Event
from webhooks_api.queue import PUBLISH_QUEUE, PUBLISH_TASK


@contextlib.contextmanager
def _publish_messages_sent() -> Iterator[list[dict]]:
    """The `webhooks.publish` messages this process sends while the block runs: task id,
    args and kwargs, as the broker gets them."""
    sent: list[dict] = []

    def on_publish(sender=None, body=None, headers=None, **kwargs):
        if sender == PUBLISH_TASK:
            sent.append({"id": headers["id"], "args": body[0], "kwargs": body[1]})

    before_task_publish.connect(on_publish, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(on_publish)


def _publish(path: str, app, client, tenant) -> None:
    data = {"invoice_id": "inv_twice"}
    if path == "send_task":  # publish.delay()'s message, sent by task name
        app.extensions["celery"].send_task(PUBLISH_TASK, args=["invoice.created", data,
                                                               tenant["id"]],
                                           queue=PUBLISH_QUEUE)
    elif path == "api":
        publish_via_api(client, tenant, data=data)
    else:
        with app.app_context():
            get_event_bus().publish("invoice.created", data, tenant["id"])


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("path", ["send_task", "api", "event_bus"])
def test_a_publish_message_processed_twice_stores_one_event(path, app, client, tenant, receiver,
                                                            worker, session, task_events):
    """The second run of the same message (what Redis does after a worker died before its
    ack) finds the event the first run stored: one event, one delivery per subscription,
    one POST each with the same webhook-id. The API and the event bus store before they
    enqueue (their message names the stored event); `publish.delay()` / `send_task`
    messages carry only the event, so its default id must come from the message."""
    for index in range(2):
        create_subscription(client, tenant, f"{receiver.base_url}/twice-{index}")
    with _publish_messages_sent() as sent:
        _publish(path, app, client, tenant)
    [message] = sent
    task_events.wait_finished(message["id"])
    wait_for(lambda: len(receiver.posts()) == 2, message="the first run's two POSTs")

    app.extensions["celery"].send_task(PUBLISH_TASK, args=message["args"],
                                       kwargs=message["kwargs"], queue=PUBLISH_QUEUE,
                                       task_id=message["id"])
    wait_for(lambda: task_events.of(message["id"]).count("task-succeeded") == 2,
             message="the second run of the same message")
    # A second event's deliveries are committed and enqueued by that run, before its ack.
    wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)),
             message="every delivery finished")
    assert _count(session, Event) == 1
    assert _count(session, Delivery) == 2
    posts = receiver.posts()
    assert sorted(p.path for p in posts) == ["/twice-0", "/twice-1"]
    [event] = session.scalars(select(Event)).all()
    assert {p.headers["webhook-id"] for p in posts} == {event.event_id}


def test_a_derived_event_id_has_the_generated_shape_and_depends_on_the_task_id_only():
    ids = {derived_id("evt", f"task-{n}") for n in range(2000)}
    assert len(ids) == 2000
    assert all(ID_PATTERN.match(i) and len(i) == len(new_id("evt")) for i in ids)
    assert derived_id("evt", "c0ffee") == derived_id("evt", "c0ffee")
