"""Log format for every process (API, worker, beat, CLI): plain text or one JSON object
per line (WEBHOOKS_LOG_FORMAT=json), with fields passed as `extra=` kept as JSON fields.

Inside a Celery task every line also carries `task_id` and `task_name` (JSON fields), so a
line can be traced to the task Flower shows. The worker hands its logging to this module
(webhooks_worker.runtime.observability connects Celery's `setup_logging` signal), so Celery does
not replace the root handler with its own plain-text one.
"""

from __future__ import annotations

import logging

from webhooks_api.config import Settings

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class TaskContextFilter(logging.Filter):
    """Adds the running Celery task's id and name to every record (None outside tasks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from celery import current_task

        task = current_task if current_task and current_task.request.id else None
        record.task_id = task.request.id if task else None
        record.task_name = task.name if task else None
        return True


def configure_logging(settings: Settings, level: int | str | None = None) -> None:
    """Install one root handler once; JSON lines when WEBHOOKS_LOG_FORMAT=json."""
    root = logging.getLogger()
    if level is not None:
        root.setLevel(level)
    elif root.level == logging.WARNING:
        root.setLevel(logging.INFO)
    if any(getattr(h, "_webhooks", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._webhooks = True  # type: ignore[attr-defined]
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(_JSON_FIELDS))
        handler.addFilter(TaskContextFilter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
