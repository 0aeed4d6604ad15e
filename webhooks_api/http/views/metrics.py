"""Prometheus scrape endpoint (unauthenticated like /healthz: aggregates only, no tenant
data; keep it on the internal network)."""

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from webhooks_api.config import current_settings
from webhooks_api.extensions import db
from webhooks_api.metrics import exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Every process's counters (multiprocess mode) and the queue and delivery gauges."""
    return Response(exposition(db.session, current_settings()), mimetype=CONTENT_TYPE_LATEST)
