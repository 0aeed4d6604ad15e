"""Task and queue names: the contract between the API and the worker.

A leaf module (it imports nothing of ours), so settings, the API and the worker all read
the names from here without depending on anything that sends messages.
"""

PUBLISH_TASK = "webhooks.publish"
DELIVER_TASK = "webhooks.deliver"
ENQUEUE_TASK = "webhooks.enqueue"
SWEEP_TASK = "webhooks.sweep"
PRUNE_TASK = "webhooks.prune"
# One chunk of a bulk retry job, which schedules the next (webhooks_worker.maintenance.bulk_retry).
BULK_RETRY_TASK = "webhooks.bulk_retry"

PUBLISH_QUEUE = "webhooks.publish"
DELIVER_QUEUE = "webhooks.deliver"
# Retries (countdowns, swept re-sends, bulk replays) travel apart from first attempts, so a
# backlog of retries to sick endpoints never sits in front of a fresh delivery.
RETRY_QUEUE = "webhooks.retry"
MAINTENANCE_QUEUE = "webhooks.maintenance"
# The order a worker consumes in (-Q): on Redis it takes from the first non-empty queue
# (queue_order_strategy "priority"): first attempts (and the enqueue chunks of a large
# fan-out, which travel with them), then publishes, then retries
# (docs/decisions/0014-deliveries-before-publishes.md).
WORKER_QUEUES = (DELIVER_QUEUE, PUBLISH_QUEUE, RETRY_QUEUE, MAINTENANCE_QUEUE)
