"""The private kombu and Celery API we override or call, checked against the installed
versions: each function's signature must still be the one the override was written
against (`inspect.signature`), each call a stand-in of ours receives must still be made
with the arguments it takes (the call in the caller's source, `inspect.getsource`), each
attribute must still exist, and setup.cfg must hold kombu and Celery to the minor versions
they were read in. A kombu or Celery release that changes one fails here, naming the module
of ours that depends on it, before it fails a delivery. A new override belongs in
`OVERRIDES`, a new stand-in in `CALLS`.
"""

from __future__ import annotations

import ast
import configparser
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import pytest
from celery import Celery
from celery.events.dispatcher import EventDispatcher
from celery.worker.consumer import events as consumer_events
from kombu import Connection, Producer
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

_APP = Celery("private-api-check", set_as_current=False)
_AMQP = _APP.amqp
# Built as batch_sender.py builds its dispatcher of task-sent events (no I/O).
_CONNECTION = Connection("memory://")
_DISPATCHER = _APP.events.Dispatcher(_CONNECTION, enabled=False, buffer_while_offline=False)


@dataclass(frozen=True)
class Override:
    """`ours` depends on `target` (a callable, read when checked) having `signature`."""

    ours: str
    name: str
    target: Callable[[], Callable]
    signature: str


TRANSPORT = "webhooks_api/messaging/redis_transport.py"
BATCH = "webhooks_api/messaging/batch_sender.py"
GREEN = "webhooks_worker/runtime/green.py"
STATS = "webhooks_api/services/stats.py"

OVERRIDES = [
    Override(TRANSPORT, "kombu.transport.redis.Channel._get_pool",
             lambda: kombu_redis.Channel._get_pool, "(self, asynchronous=False)"),
    Override(TRANSPORT, "kombu.transport.redis.Channel._connparams",
             lambda: kombu_redis.Channel._connparams, "(self, asynchronous=False)"),
    Override(TRANSPORT, "kombu.transport.redis.Channel._create_client",
             lambda: kombu_redis.Channel._create_client, "(self, asynchronous=False)"),
    Override(TRANSPORT, "kombu.transport.redis.MultiChannelPoller.get",
             lambda: kombu_redis.MultiChannelPoller.get, "(self, callback, timeout=None)"),
    Override(TRANSPORT, "kombu.transport.redis.QoS.can_consume",
             lambda: kombu_redis.QoS.can_consume, "(self)"),
    Override(TRANSPORT, "kombu.transport.redis.Transport.__init__",
             lambda: kombu_redis.Transport.__init__, "(self, *args, **kwargs)"),
    Override(TRANSPORT, "kombu.transport.redis.QoS.append",
             lambda: kombu_redis.QoS.append, "(self, message, delivery_tag)"),
    Override(TRANSPORT, "kombu.transport.virtual.QoS.append",
             lambda: virtual.QoS.append, "(self, message, delivery_tag)"),
    Override(TRANSPORT, "kombu.transport.redis.QoS.pipe_or_acquire",
             lambda: kombu_redis.QoS.pipe_or_acquire, "(self, pipe=None, client=None)"),
    Override(TRANSPORT, "kombu.transport.redis.QoS.restore_visible",
             lambda: kombu_redis.QoS.restore_visible, "(self, start=0, num=10, interval=10)"),
    Override(TRANSPORT, "kombu.transport.redis.MultiChannelPoller.maybe_restore_messages",
             lambda: kombu_redis.MultiChannelPoller.maybe_restore_messages, "(self)"),
    Override(BATCH, "kombu.Producer.batch", lambda: Producer.batch, "(self, max_size=1000)"),
    Override(BATCH, "kombu.Producer.maybe_declare", lambda: Producer.maybe_declare,
             "(self, entity, retry=False, **retry_policy)"),
    Override(BATCH, "celery.app.amqp.AMQP.create_task_message",
             lambda: _AMQP.create_task_message,
             "(task_id, name, args=None, kwargs=None, countdown=None, eta=None, "
             "group_id=None, group_index=None, expires=None, retries=0, chord=None, "
             "callbacks=None, errbacks=None, reply_to=None, time_limit=None, "
             "soft_time_limit=None, create_sent_event=False, root_id=None, parent_id=None, "
             "shadow=None, chain=None, now=None, timezone=None, origin=None, "
             "ignore_result=False, argsrepr=None, kwargsrepr=None, stamped_headers=None, "
             "replaced_task_nesting=0, **options)"),
    Override(BATCH, "celery.app.amqp.AMQP.send_task_message",
             lambda: _AMQP.send_task_message,
             "(producer, name, message, exchange=None, routing_key=None, queue=None, "
             "event_dispatcher=None, retry=None, retry_policy=None, serializer=None, "
             "delivery_mode=None, compression=None, declare=None, headers=None, "
             "exchange_type=None, timeout=None, confirm_timeout=None, **kwargs)"),
    Override(BATCH, "celery.events.dispatcher.EventDispatcher._prepare_event",
             lambda: EventDispatcher._prepare_event, "(self, type, fields, blind=False, Event=…)"),
    Override(BATCH, "celery.events.dispatcher.EventDispatcher._publish",
             lambda: EventDispatcher._publish,
             "(self, event, producer, routing_key, retry=False, retry_policy=None, "
             "utcoffset=…)"),
    Override(GREEN, "celery.events.dispatcher.EventDispatcher.__init__",
             lambda: EventDispatcher.__init__,
             "(self, connection=None, hostname=None, enabled=True, channel=None, "
             "buffer_while_offline=True, app=None, serializer=None, groups=None, "
             "delivery_mode=1, buffer_group=None, buffer_limit=24, on_send_buffered=None)"),
    Override(GREEN, "celery.events.dispatcher.EventDispatcher.flush",
             lambda: EventDispatcher.flush, "(self, errors=True, groups=True)"),
    Override(STATS, "kombu.transport.redis.Channel.conn_or_acquire",
             lambda: kombu_redis.Channel.conn_or_acquire, "(self, client=None)"),
]


@dataclass(frozen=True)
class Call:
    """`ours` hands `caller` (read when checked) a stand-in that takes what `caller` passes
    it in the call `shape` (by its source: how many arguments by position, which by
    keyword)."""

    ours: str
    name: str
    caller: Callable[[], Callable]
    shape: str


CALLS = [
    # _SentEvents.publish(type, fields, producer, **_retry): the dispatcher's publish,
    # collecting the task-sent event instead of sending it.
    Call(BATCH, "celery.app.amqp.AMQP.send_task_message", lambda: _AMQP.send_task_message,
         "evd.publish(…, …, …, retry=…, retry_policy=…)"),
]

# Attributes read or set without a signature to check: (ours, owner, attribute).
ATTRIBUTES = [
    (TRANSPORT, kombu_redis.Channel, "keyprefix_fanout"),
    (TRANSPORT, kombu_redis.Channel, "max_connections"),
    (TRANSPORT, kombu_redis.MultiChannelPoller(), "_channels"),
    (TRANSPORT, kombu_redis.Transport, "Channel"),
    (TRANSPORT, kombu_redis.Channel, "QoS"),
    (TRANSPORT, kombu_redis.Channel, "from_transport_options"),
    (TRANSPORT, kombu_redis.Channel, "unacked_restore_interval"),
    (TRANSPORT, kombu_redis.Channel, "unacked_restore_limit"),
    (TRANSPORT, kombu_redis.QoS, "unacked_index_key"),
    (STATS, kombu_redis.Channel, "unacked_key"),
    (BATCH, Producer, "supports_batch_publish"),
    (BATCH, Celery, "current_worker_task"),
    (BATCH, Celery, "thread_oid"),
    (BATCH, _DISPATCHER, "mutex"),  # held while the chunk's events are published
    (BATCH, _DISPATCHER, "exchange"),  # rebound to the producer's channel, read by _publish
    (BATCH, _CONNECTION, "declared_entities"),  # kombu's cache of declared queues
    (GREEN, consumer_events, "Events"),
]

# The minor versions the overrides were read in (setup.cfg pins them).
PINNED = {"kombu": "5.7", "celery": "5.7"}


def _shape(signature: inspect.Signature) -> str:
    """The signature as written, with a default that is not a plain value shown as `…`
    (a function's repr carries its address)."""
    parameters = []
    for parameter in signature.parameters.values():
        default = parameter.default
        if default is not parameter.empty and not isinstance(
                default, str | int | float | bool | type(None)):
            parameter = parameter.replace(default=_Elided())
        parameters.append(parameter)
    return str(signature.replace(parameters=parameters))


class _Elided:
    def __repr__(self) -> str:
        return "…"


def signature_changes() -> list[str]:
    """One line per override whose target's signature is not the one it was written
    against, or that is gone."""
    changes = []
    for override in OVERRIDES:
        try:
            found = _shape(inspect.signature(override.target()))
        except AttributeError:
            found = "gone"
        if found != override.signature:
            changes.append(
                f"{override.ours} depends on {override.name}{override.signature}, which is "
                f"now {override.name}{found}: read the new code before raising the pin")
    return changes


def _call_shapes(function: Callable, callee: str) -> list[str]:
    """Every call of `callee` (as written, e.g. `evd.publish`) in `function`'s source, by
    the shape of its arguments."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return [f"{callee}(" + ", ".join(["…"] * len(node.args)
                                     + [f"{keyword.arg}=…" for keyword in node.keywords]) + ")"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == callee]


def call_changes() -> list[str]:
    """One line per stand-in whose caller no longer calls it as it was written for."""
    changes = []
    for call in CALLS:
        found = _call_shapes(call.caller(), call.shape.split("(")[0])
        if found != [call.shape]:
            changes.append(
                f"{call.ours} stands in for what {call.name} calls as {call.shape}, which it "
                f"now calls as {' and '.join(found) or 'nothing'}: read the new code before "
                "raising the pin")
    return changes


def test_every_overridden_function_keeps_the_signature_we_override():
    changes = signature_changes() + call_changes()
    missing = [f"{ours} uses {getattr(owner, '__name__', type(owner).__name__)}.{name}, "
               "which is gone" for ours, owner, name in ATTRIBUTES if not hasattr(owner, name)]
    assert not changes + missing, "private kombu/Celery API changed:\n" + "\n".join(
        changes + missing)


def test_a_changed_signature_fails_naming_the_override(monkeypatch):
    """What a kombu release that gave `_get_pool` another parameter would print."""
    monkeypatch.setattr(kombu_redis.Channel, "_get_pool",
                        lambda self, asynchronous=False, timeout=None: None)
    [change] = signature_changes()
    assert change.startswith(f"{TRANSPORT} depends on kombu.transport.redis.Channel._get_pool"
                             "(self, asynchronous=False), which is now ")
    assert "(self, asynchronous=False, timeout=None)" in change


def _send_task_message_publishing_blind(producer, name, message, event_dispatcher=None):
    evd = event_dispatcher
    evd.publish("task-sent", {}, producer, blind=True)


def test_a_changed_call_fails_naming_the_stand_in(monkeypatch):
    """What a Celery release that sent task-sent events blind would print."""
    monkeypatch.setattr(_AMQP, "send_task_message", _send_task_message_publishing_blind)
    [change] = call_changes()
    assert change == (f"{BATCH} stands in for what celery.app.amqp.AMQP.send_task_message "
                      "calls as evd.publish(…, …, …, retry=…, retry_policy=…), which it now "
                      "calls as evd.publish(…, …, …, blind=…): read the new code before "
                      "raising the pin")


def _requirements() -> dict[str, Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines()]
    parsed = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {requirement.name: requirement for requirement in parsed}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_setup_cfg_pins_kombu_and_celery_to_the_minor_version_we_override(package):
    major, minor = map(int, PINNED[package].split("."))
    specifier = _requirements()[package].specifier
    assert Version(version(package)) in specifier, (package, version(package), specifier)
    assert f"{major}.{minor}.0" in specifier and f"{major}.{minor}.99" in specifier
    assert f"{major}.{minor + 1}.0" not in specifier, (
        f"setup.cfg lets {package} {major}.{minor + 1} in, whose private API "
        f"{sorted({o.ours for o in OVERRIDES})} were not read against: {specifier}")
    assert f"{major}.{minor - 1}.99" not in specifier, specifier
