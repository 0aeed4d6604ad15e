"""The Celery app of the API and the worker, bound to Flask: its task base, its queues and
the configuration it takes from the settings."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask
from kombu import Exchange, Queue

from webhooks_api.config import Settings
from webhooks_api.messaging.labels import reprs_for_call
from webhooks_api.messaging.names import PRUNE_TASK, SWEEP_TASK, WORKER_QUEUES


class FlaskTask(Task):
    """Runs each task in an app context of its own: one session per task, removed after."""

    def __call__(self, *args, **kwargs):
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)

    def apply_async(self, args=None, kwargs=None, **options):
        """Readable, secret-free arguments in Flower, also for `self.retry()`, whose new
        message would otherwise carry Celery's repr of the raw arguments."""
        if "argsrepr" not in options and "kwargsrepr" not in options:
            reprs = reprs_for_call(self.name, args, kwargs)
            if reprs is not None:
                options["argsrepr"], options["kwargsrepr"] = reprs
        return super().apply_async(args, kwargs, **options)


celery = Celery("webhooks", task_cls=FlaskTask)


def task_queues(settings: Settings) -> tuple[Queue, ...]:
    """Each queue with an exchange and routing key of its own: on RabbitMQ, queues sharing
    the default exchange's key would each get a copy of every message (and of every
    delayed one). On RabbitMQ they are quorum queues, so Celery keeps countdowns in the
    broker (native delayed delivery, which needs topic exchanges) instead of in a
    worker's memory, where RabbitMQ's `consumer_timeout` (30 min) would kill the channel
    holding a 1 h or 6 h retry."""
    amqp = settings.broker_is_amqp
    arguments = {"x-queue-type": "quorum"} if amqp else None
    return tuple(Queue(name, Exchange(name, type="topic" if amqp else "direct"),
                       routing_key=name, queue_arguments=arguments)
                 for name in WORKER_QUEUES)


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Bind the shared Celery app to Flask: each task runs in an app context of its own."""
    celery.config_from_object("celeryconfig")
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport=settings.broker_transport,
        broker_transport_options=settings.broker_transport_options,
        task_queues=task_queues(settings),
        worker_eta_task_limit=settings.worker_eta_task_limit,
        task_time_limit=settings.task_time_limit_seconds,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": float(settings.sweep_interval_seconds),
                # A sweep not started within its interval is dropped: the next one covers
                # it, so sweeps do not pile up while the workers are down.
                "options": {"expires": float(settings.sweep_interval_seconds)},
            },
            "prune": {"task": PRUNE_TASK,
                      "schedule": float(settings.retention_interval_seconds)},
        },
    )
    celery.flask_app = app
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
