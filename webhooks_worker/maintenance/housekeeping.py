"""Housekeeping tasks on the maintenance queue, run by beat (webhooks_api.messaging.enqueue)."""

from __future__ import annotations

from flask import current_app

from webhooks_api.extensions import db
from webhooks_api.messaging.celery_glue import celery
from webhooks_api.messaging.names import PRUNE_TASK
from webhooks_worker.maintenance.retention import prune as prune_expired


@celery.task(name=PRUNE_TASK)
def prune():
    """Delete attempts and events past WEBHOOKS_RETENTION_DAYS; open deliveries stay."""
    report = prune_expired(db.session, current_app.config["WEBHOOKS_SETTINGS"])
    return {"attempts_deleted": report.attempts_deleted,
            "events_deleted": report.events_deleted}
