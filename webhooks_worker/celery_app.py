"""The worker entry point: `celery -A webhooks_worker.celery_app worker`."""

from webhooks_api.config import ConfigError, worker_refusal

from .green import BufferedTaskEvents, cooperate_with_gevent

cooperate_with_gevent()  # before any connection is made

from webhooks_api import create_app  # noqa: E402
from webhooks_api.extensions import celery as celery_app  # noqa: E402

try:
    flask_app = create_app(worker=True)
except ConfigError as error:
    raise worker_refusal(error) from None

from . import heap, maintenance, observability, tasks  # noqa: E402,F401  (tasks, signals)

celery_app.steps["consumer"].add(BufferedTaskEvents)

__all__ = ["celery_app", "flask_app"]
