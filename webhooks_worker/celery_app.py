"""The worker entry point: `celery -A webhooks_worker.celery_app worker`."""

from celery.signals import worker_process_init

from webhooks_api import create_app
from webhooks_api.config import ConfigError
from webhooks_api.extensions import celery as celery_app
from webhooks_api.extensions import db

try:
    flask_app = create_app(worker=True)
except ConfigError as error:
    # An operator's mistake, not a crash: one line naming the setting, then exit 1.
    raise SystemExit(f"webhooks worker: refusing to start: {error}") from None

from . import heap, maintenance, observability, tasks, time_limit  # noqa: E402,F401  (tasks, signals)


@worker_process_init.connect
def _fresh_connections(**_):
    """Pooled connections must not cross a fork (SQLAlchemy "os.fork()" guidance)."""
    with flask_app.app_context():
        db.engine.dispose(close=False)


__all__ = ["celery_app", "flask_app"]
