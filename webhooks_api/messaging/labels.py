"""Readable, secret-free task arguments for Flower (Celery's `argsrepr` / `kwargsrepr`).

Flower shows a task's arguments as the repr strings its publisher put in the message
headers. A deliver message carries only ids, which tell an operator little, and
`publish.delay()` carries the event's data and metadata, which must not be shown. So every
message we send gets reprs built here:

- `webhooks.deliver`: delivery id, attempt number, trigger, event type and target host
  (the host only — a URL's path or query may hold a token). The fan-out and the retry
  already know both; for other senders one query per batch looks them up;
- `webhooks.publish`: event type, tenant and event id; the data and metadata are hidden.

`self.retry()` builds a new message without the reprs of the one it replaces (PITFALLS),
so the deliver task passes them to its retry, and `FlaskTask.apply_async` builds them for
any other call that lacks them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import text

from webhooks_api.domain.urls import target_host
from webhooks_api.messaging.enqueue import Message
from webhooks_api.messaging.names import DELIVER_TASK, PUBLISH_TASK

logger = logging.getLogger(__name__)

Reprs = tuple[str, str]

# Parameter names in the order the tasks take them (webhooks_worker.tasks).
_PARAMETERS = {
    DELIVER_TASK: ("delivery_id", "attempt_number", "trigger"),
    PUBLISH_TASK: ("event_type", "event_data", "tenant_id", "metadata", "event_id"),
}
_HIDDEN = "<hidden>"

_DELIVERY_TARGETS = text("""
    SELECT d.id, d.event_type, s.url
    FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.id = ANY(:delivery_ids)
""")


def _named(task_name: str, args: Sequence, kwargs: Mapping) -> dict:
    names = _PARAMETERS[task_name]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _delivery_targets(delivery_ids: list[str]) -> dict[str, tuple[str, str]]:
    """delivery id → (event type, target host); empty when the database cannot say."""
    if not delivery_ids:
        return {}
    from webhooks_api.extensions import db

    try:
        with db.engine.connect() as connection:
            rows = connection.execute(_DELIVERY_TARGETS, {"delivery_ids": delivery_ids})
            return {row.id: (row.event_type, target_host(row.url)) for row in rows}
    except Exception:  # labels are cosmetic: never let them stop a message
        logger.warning("could not look up event types and hosts for Flower labels",
                       exc_info=True)
        return {}


def _deliver_reprs(named: dict, targets: Mapping[str, tuple[str, str]]) -> Reprs:
    event_type, host = targets.get(named.get("delivery_id"), (None, None))
    shown = {key: named.get(key) for key in _PARAMETERS[DELIVER_TASK]}
    return "()", repr({**shown, "event_type": event_type, "target_host": host})


def _publish_reprs(named: dict) -> Reprs:
    """A stored event's message names tenant and event; `publish.delay()` adds the type
    and the data, which stays hidden."""
    shown = {key: named[key] for key in ("event_type", "tenant_id", "event_id")
             if named.get(key) is not None}
    shown.update({key: _HIDDEN for key in ("event_data", "metadata")
                  if named.get(key) is not None})
    return "()", repr(shown)


def with_reprs(batch: list[Message]) -> list[Message]:
    """The messages with their reprs; one query for the deliveries whose sender did not
    know their event type and host (the sweep), none on the fan-out and retry paths."""
    targets = _delivery_targets([message.kwargs["delivery_id"] for message in batch
                                 if message.name == DELIVER_TASK and message.reprs is None])
    return [message if message.reprs is not None
            else message._replace(reprs=_reprs(message.name, dict(message.kwargs), targets))
            for message in batch]


def deliver_reprs(delivery_id: str, attempt_number: int, trigger: str, event_type: str,
                  url: str) -> Reprs:
    """Reprs of a deliver message whose sender knows the event type and target URL."""
    named = {"delivery_id": delivery_id, "attempt_number": attempt_number,
             "trigger": trigger}
    return _deliver_reprs(named, {delivery_id: (event_type, target_host(url))})


def reprs_for_call(task_name: str, args: Sequence | None, kwargs: Mapping | None
                   ) -> Reprs | None:
    """Reprs for one `apply_async` call (retries, `publish.delay()`); None: Celery's own."""
    if task_name not in _PARAMETERS:
        return None
    named = _named(task_name, args or (), kwargs or {})
    targets = (_delivery_targets([named["delivery_id"]])
               if task_name == DELIVER_TASK and "delivery_id" in named else {})
    return _reprs(task_name, named, targets)


def _reprs(task_name: str, named: dict, targets: Mapping) -> Reprs | None:
    if task_name == DELIVER_TASK:
        return _deliver_reprs(named, targets)
    if task_name == PUBLISH_TASK:
        return _publish_reprs(named)
    return None
