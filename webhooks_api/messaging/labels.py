"""Readable, secret-free task arguments for Flower (Celery's `argsrepr` / `kwargsrepr`).

Flower shows a task's arguments as the repr strings its publisher put in the message
headers. A deliver message carries only ids, which tell an operator little, and
`publish.delay()` carries the event's data and metadata, which must not be shown. So every
message we send gets reprs built here:

- `webhooks.deliver`: delivery id, attempt number, trigger, event type and target host
  (the host only — a URL's path or query may hold a token), as far as the sender knows
  them: the fan-out, the retry and the test event know both, a manual retry and the sweep
  the event type. Nothing is looked up: a label never costs a query on the send path, nor
  fails a send when the database is down;
- `webhooks.publish`: event type, tenant and event id; the data and metadata are hidden.

`self.retry()` builds a new message without the reprs of the one it replaces (PITFALLS),
so the deliver task passes them to its retry, and `FlaskTask.apply_async` builds them for
any other call that lacks them.
"""

from __future__ import annotations

from collections.abc import Sequence

from webhooks_api.domain.urls import target_host
from webhooks_api.messaging.message import Message
from webhooks_api.messaging.names import DELIVER_TASK, PUBLISH_TASK

Reprs = tuple[str, str]

# Parameter names in the order the tasks take them (webhooks_worker.tasks).
_PARAMETERS = {
    DELIVER_TASK: ("delivery_id", "attempt_number", "trigger"),
    PUBLISH_TASK: ("event_type", "event_data", "tenant_id", "metadata", "event_id"),
}
_HIDDEN = "<hidden>"


def _named(task_name: str, args: Sequence, kwargs: dict) -> dict:
    names = _PARAMETERS[task_name]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _deliver_reprs(named: dict, event_type: str | None = None,
                   host: str | None = None) -> Reprs:
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
    """The messages with their reprs: a sender's own, else what the message carries."""
    return [message if message.reprs is not None
            else message._replace(reprs=_reprs(message.name, dict(message.kwargs)))
            for message in batch]


def deliver_reprs(delivery_id: str, attempt_number: int, trigger: str,
                  event_type: str | None, url: str | None = None) -> Reprs:
    """Reprs of a deliver message from what its sender knows: the event type, and the
    target URL when it has it (only its host is shown)."""
    named = {"delivery_id": delivery_id, "attempt_number": attempt_number,
             "trigger": trigger}
    return _deliver_reprs(named, event_type, target_host(url) if url else None)


def reprs_for_call(task_name: str, args: Sequence | None, kwargs: dict | None
                   ) -> Reprs | None:
    """Reprs for one `apply_async` call that lacks them (`publish.delay()`, Celery's
    automatic retry of a deliver task); None: Celery's own."""
    if task_name not in _PARAMETERS:
        return None
    return _reprs(task_name, _named(task_name, args or (), kwargs or {}))


def _reprs(task_name: str, named: dict) -> Reprs | None:
    if task_name == DELIVER_TASK:
        return _deliver_reprs(named)
    if task_name == PUBLISH_TASK:
        return _publish_reprs(named)
    return None
