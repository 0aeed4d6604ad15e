"""Celery settings that make webhook delivery safe on Redis; each line says why.

Values derived from the environment (broker URL, visibility timeout, the ETA bound) come
from webhooks_api.config, the one place the environment is read; `celery_init_app` applies
the same values for an app built with a test configuration. Every name below was checked
against Celery 5.7's `celery.app.defaults` and the code that reads it.
"""

from webhooks_api.config import ConfigError, load_settings, worker_refusal
from webhooks_api.messaging.celery_glue import task_queues as _task_queues
from webhooks_api.messaging.names import (
    BULK_RETRY_TASK,
    DELIVER_QUEUE,
    DELIVER_TASK,
    ENQUEUE_TASK,
    MAINTENANCE_QUEUE,
    PRUNE_TASK,
    PUBLISH_QUEUE,
    PUBLISH_TASK,
    SWEEP_TASK,
)

try:
    _settings = load_settings()
except ConfigError as error:
    raise worker_refusal(error) from None

# Where tasks travel; Redis by default (DESIGN.md "Running").
broker_url = _settings.broker_url
# Redis re-hands an unacked message once it was delivered this many seconds ago (kombu
# QoS.restore_visible), whatever its ETA: on the retry queue 2 x the longest countdown
# (Retry-After may double it) + the longest request timeout + 600 s, so a held 6 h retry
# never runs twice; on the others the short timeout, so a dead worker's publish messages
# and first attempts come back within minutes (docs/decisions/0011).
broker_transport_options = _settings.broker_transport_options
# On Redis, kombu's transport with one fix (webhooks_api/messaging/redis_transport.py): without it a
# worker holding unacked messages exits when Redis goes away instead of reconnecting.
broker_transport = _settings.broker_transport
# Only JSON: task arguments are ids and names that Flower can show, never pickled objects.
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
# Outcomes live in PostgreSQL; a result backend would only duplicate them.
task_ignore_result = True
# Ack after the task ran: a worker killed mid-delivery leaves the message to be re-handed.
task_acks_late = True
# ...but a task that crashed its worker process is not re-queued forever (docs warning);
# the claim expiry and the sweep recover its delivery instead.
task_reject_on_worker_lost = False
# Backstop for a task stuck outside the HTTP deadline (a lock): ended, and its
# delivery swept once the claim expires; above the longest request timeout. The gevent
# pool raises gevent.Timeout in the task's greenlet (prefork kills the child).
task_time_limit = _settings.task_time_limit_seconds
# Reserve no more messages than the pool runs at once (its concurrency): a reserved message
# waits behind the ones before it and bypasses the queue order (fresh deliveries before
# retries).
worker_prefetch_multiplier = 1
# Countdown (ETA) messages a worker may hold in memory; past it the worker takes no new
# message until some fire (celery QoS max_prefetch), so size it for the retries expected.
worker_eta_task_limit = _settings.worker_eta_task_limit
# Explicit queues: fan-out, deliveries and maintenance can be given their own workers.
# Each has its own exchange and key; quorum queues on RabbitMQ (see task_queues).
task_queues = _task_queues(_settings)
task_default_queue = DELIVER_QUEUE
# Explicit task names (not module paths) route each task; senders use only these names.
task_routes = {
    PUBLISH_TASK: {"queue": PUBLISH_QUEUE},
    DELIVER_TASK: {"queue": DELIVER_QUEUE},
    ENQUEUE_TASK: {"queue": DELIVER_QUEUE},
    SWEEP_TASK: {"queue": MAINTENANCE_QUEUE},
    PRUNE_TASK: {"queue": MAINTENANCE_QUEUE},
    BULK_RETRY_TASK: {"queue": MAINTENANCE_QUEUE},
}
# Flower sees every task: worker events, and "sent" events from publishers too.
worker_send_task_events = True
task_send_sent_event = True
# A lost broker connection cancels running acks_late tasks instead of running them twice.
worker_cancel_long_running_tasks_on_connection_loss = True
# Keep retrying the broker at start-up instead of exiting (Celery 6 default).
broker_connection_retry_on_startup = True
# Beat keeps its schedule in memory and runs each task once when it starts: it needs no
# schedule file, so it starts in a fresh checkout and in a read-only container.
beat_scheduler = "webhooks_worker.maintenance.scheduler:StartupScheduler"
# Times in UTC everywhere, like the database.
enable_utc = True
timezone = "UTC"
