"""Celery settings that make webhook delivery safe on Redis; each line says why.

Values derived from the environment (broker URL, visibility timeout) come from
webhooks_api.config, the one place the environment is read; `celery_init_app` applies the
same values for an app built with a test configuration.
"""

from webhooks_api.config import load_settings
from webhooks_api.queue import DELIVER_QUEUE, MAINTENANCE_QUEUE, PUBLISH_QUEUE
from webhooks_api.queue import task_queues as _task_queues

_settings = load_settings()

# Where tasks travel; Redis by default (DESIGN.md "Running").
broker_url = _settings.broker_url
# Redis re-hands an unacked message after this many seconds: above twice the longest
# countdown plus the longest request timeout, so a held 6 h retry never runs twice.
broker_transport_options = _settings.broker_transport_options
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
# One message at a time per process, so a long delivery does not hide others behind it.
worker_prefetch_multiplier = 1
# Bound on countdown (ETA) messages one worker holds in memory; the rest wait in Redis.
worker_eta_task_limit = 1000
# Explicit queues: fan-out, deliveries and maintenance can be given their own workers.
# Each has its own exchange and key; quorum queues on RabbitMQ (see task_queues).
task_queues = _task_queues(_settings)
task_default_queue = DELIVER_QUEUE
task_routes = {
    "webhooks.publish": {"queue": PUBLISH_QUEUE},
    "webhooks.deliver": {"queue": DELIVER_QUEUE},
    "webhooks.sweep": {"queue": MAINTENANCE_QUEUE},
    "webhooks.prune": {"queue": MAINTENANCE_QUEUE},
}
# Flower sees every task: worker events, and "sent" events from publishers too.
worker_send_task_events = True
task_send_sent_event = True
# A lost broker connection cancels running acks_late tasks instead of running them twice.
worker_cancel_long_running_tasks_on_connection_loss = True
# Keep retrying the broker at start-up instead of exiting (Celery 6 default).
broker_connection_retry_on_startup = True
# Times in UTC everywhere, like the database.
enable_utc = True
timezone = "UTC"
