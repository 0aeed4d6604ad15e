"""The worker entry point: `celery -A webhooks_worker.celery_app worker`.

Beat, Flower and scripts that publish load this module too; what only a worker needs is
checked when a worker starts (`celeryd_init`), not here.
"""

from celery.signals import celeryd_init

from webhooks_api.config import ConfigError, check_worker_redis, worker_refusal
from webhooks_worker.runtime.green import BufferedTaskEvents, LookupThreads, cooperate_with_gevent

cooperate_with_gevent()  # before any connection is made

from webhooks_api import create_app  # noqa: E402
from webhooks_api.messaging.celery_glue import celery as celery_app  # noqa: E402

try:
    flask_app = create_app(worker=True)
except ConfigError as error:
    raise worker_refusal(error) from None

from webhooks_worker import tasks  # noqa: E402,F401  (tasks, signals)
from webhooks_worker.maintenance import housekeeping  # noqa: E402,F401  (tasks, signals)
from webhooks_worker.runtime import (  # noqa: E402,F401  (tasks, signals)
    flower,
    heap,
    observability,
    tracing,
)

celery_app.steps["consumer"].add(BufferedTaskEvents)
celery_app.steps["worker"].add(LookupThreads)


@celeryd_init.connect
def refuse_protections_without_redis(**_) -> None:
    """The breaker, the rate limit and the in-flight window on, and no Redis to hold their
    state (a RabbitMQ broker without WEBHOOKS_REDIS_URL): exit before taking any task."""
    try:
        check_worker_redis(flask_app.config["WEBHOOKS_SETTINGS"])
    except ConfigError as error:
        raise worker_refusal(error) from None


__all__ = ["celery_app", "flask_app"]
