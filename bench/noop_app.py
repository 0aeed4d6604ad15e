"""A Celery app whose `webhooks.deliver` does nothing: the floor of the task machinery.

Same settings (celeryconfig: acks late, prefetch, events, queues and routes), same task name
and arguments as the real one, no database and no HTTP. What a worker started with this app
reaches is the most any one-task-per-delivery engine can reach with those settings.
"""

from celery import Celery

from webhooks_api.messaging.names import DELIVER_TASK

app = Celery("webhooks-noop")
app.config_from_object("celeryconfig")


@app.task(name=DELIVER_TASK)
def deliver(delivery_id: str, attempt_number: int = 1, trigger: str = "automatic") -> str:
    return "success"
