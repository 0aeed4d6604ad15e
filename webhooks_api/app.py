"""The Flask application factory: binds the extensions, the REST API and the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from webhooks_api import errors, metrics, stack_file
from webhooks_api.cli import commands
from webhooks_api.config import Settings, load_settings
from webhooks_api.extensions import db, migrate
from webhooks_api.http import console
from webhooks_api.logging_setup import configure_logging
from webhooks_api.messaging.celery_glue import celery_init_app

API_TITLE = "Webhooks API"
SWAGGER_ASSETS = "/docs/assets"


def create_app(test_config: Mapping[str, str] | None = None, *, worker: bool = False) -> Flask:
    """Build the app; `test_config` holds environment-style settings that override the env;
    `worker` for the Celery worker's app (its own database engine options)."""
    environ = {**os.environ, **(test_config or {})}
    stack_file.fill_in(environ)  # the CLI in another terminal than ./scripts/run
    settings = load_settings(environ)
    if not settings.database_url:
        raise RuntimeError(
            "DATABASE_URL is not set and no ./scripts/run is running (its var/stack.env): "
            "start ./scripts/run, which starts an embedded PostgreSQL"
        )
    configure_logging(settings)
    app = Flask(__name__)
    app.config.update(_flask_config(settings, worker))
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir())
    celery_init_app(app, settings)

    api = errors.WebhooksApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "A tenant API key"}
    )
    api.spec.components.security_scheme("portalSession", {
        "type": "http", "scheme": "bearer",
        "description": "A portal session token (POST /api/v1/webhooks/portal-sessions)"})
    from webhooks_api.http.views import register_views

    register_views(app, api)
    app.register_blueprint(console.bp)
    app.register_blueprint(console.portal_bp)
    errors.register(app)
    commands.register(app)
    metrics.init_app(app)

    @app.get(f"{SWAGGER_ASSETS}/<path:filename>")
    def swagger_assets(filename: str):
        """Swagger UI served from the installed package: /docs works offline."""
        return send_from_directory(swagger_ui_path, filename)

    return app


def _migrations_dir() -> str:
    """The checkout's top-level migrations/, installed as the package webhooks_migrations
    (setup.py): the same directory for `flask db` in the checkout and in a built wheel."""
    return str(resources.files("webhooks_migrations"))


# The API pings a pooled connection before each request uses it: a request is not retried,
# so a connection PostgreSQL dropped while the pool sat idle must not fail it. The worker
# does not: the ping is a round trip per checkout (12 % of a deliver task), and its tasks
# already retry on OperationalError (a dead connection is invalidated and replaced on the
# retry); connections are recycled after 30 min so none outlives a server-side timeout.
# A worker process runs hundreds of deliveries at once (gevent), each holding a session
# connection only for a short transaction (a failed attempt's record, a fan-out), never
# during its POST: a bounded pool serves them all, and a delivery waits for a free
# connection rather than opening more. The hot single statements have a pool of their own
# (webhooks_worker.runtime.prepared); docs/operations.md gives max_connections.
_API_ENGINE_OPTIONS = {"pool_pre_ping": True}
_WORKER_ENGINE_OPTIONS = {"pool_pre_ping": False, "pool_recycle": 1800, "pool_size": 5,
                          "max_overflow": 0, "pool_timeout": 60}


def _flask_config(settings: Settings, worker: bool = False) -> dict:
    return {
        "WEBHOOKS_SETTINGS": settings,
        "TESTING": settings.env == "test",
        "SQLALCHEMY_DATABASE_URI": settings.sqlalchemy_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _WORKER_ENGINE_OPTIONS if worker else _API_ENGINE_OPTIONS,
        "MAX_CONTENT_LENGTH": settings.max_payload_bytes + 16384,
        "API_TITLE": API_TITLE,
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": f"{SWAGGER_ASSETS}/",
        "API_SPEC_OPTIONS": {"security": [{"bearerAuth": []}]},
    }
