"""Flower labels cost no query on the send path: every deliver message is labelled from
what its sender has, and `apply_async` never touches the database, not even for Celery's
automatic retry of a deliver task or a message whose sender knew only ids."""

from __future__ import annotations

import ast
from contextlib import contextmanager

from sqlalchemy import event

from webhooks_api.extensions import db
from webhooks_api.messaging.enqueue import deliver_message, send_now
from webhooks_api.messaging.labels import deliver_reprs
from webhooks_worker.tasks import deliver, publish


@contextmanager
def statements_counted(app):
    """Every SQL statement any connection of the app's engine sends while inside."""
    sent: list[str] = []

    def count(conn, cursor, statement, *args):
        sent.append(statement)

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            yield sent
        finally:
            event.remove(engine, "before_cursor_execute", count)


def kwargs_shown(reprs: tuple[str, str]) -> dict:
    return ast.literal_eval(reprs[1])


def test_sending_deliver_messages_runs_no_query(app):
    with app.app_context(), statements_counted(app) as sent:
        # Celery's automatic retry and any caller of apply_async without labels.
        deliver.apply_async(kwargs={"delivery_id": "dlv_nolabel", "attempt_number": 2,
                                    "trigger": "automatic"}, countdown=3600)
        publish.apply_async(("invoice.paid", {"n": 1}, "tenant_x"), countdown=3600)
        # A batch of messages, some with the labels their sender knew, some with ids only.
        assert send_now([
            deliver_message("dlv_known", 1, "automatic",
                            deliver_reprs("dlv_known", 1, "automatic", "invoice.paid",
                                          "https://hooks.example:8443/in?token=t")),
            deliver_message("dlv_ids_only", 1, "swept"),
        ]) == 2
    assert sent == []


def test_labels_show_what_the_sender_knew_and_no_secret():
    known = kwargs_shown(deliver_reprs("dlv_1", 2, "manual", "invoice.paid",
                                       "https://user:pw@hooks.example:8443/in?token=t"))
    assert known == {"delivery_id": "dlv_1", "attempt_number": 2, "trigger": "manual",
                     "event_type": "invoice.paid", "target_host": "hooks.example:8443"}
    swept = kwargs_shown(deliver_reprs("dlv_2", 3, "swept", "invoice.paid"))
    assert swept["event_type"] == "invoice.paid" and swept["target_host"] is None
