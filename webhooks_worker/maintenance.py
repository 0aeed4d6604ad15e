"""Housekeeping tasks on the maintenance queue, run by beat (webhooks_api.queue)."""

from __future__ import annotations

from flask import current_app

from webhooks_api.extensions import celery, db
from webhooks_api.queue import PRUNE_TASK

from .retention import prune as prune_expired


@celery.task(name=PRUNE_TASK)
def prune():
    """Delete attempts and events past WEBHOOKS_RETENTION_DAYS; open deliveries stay."""
    report = prune_expired(db.session, current_app.config["WEBHOOKS_SETTINGS"])
    return {"attempts_deleted": report.attempts_deleted,
            "events_deleted": report.events_deleted}
