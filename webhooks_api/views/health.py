"""Process health for load balancers and orchestrators: liveness and readiness."""

from flask import Blueprint

from ..app import current_settings
from ..extensions import db
from ..readiness import readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """PostgreSQL and the broker answer: 200; otherwise 503 naming what is down."""
    checks = readiness(db.session, current_settings())
    ready = all(check.up for check in checks)
    body = {"status": "ready" if ready else "unavailable",
            "checks": {check.name: check.as_json() for check in checks}}
    return body, 200 if ready else 503
