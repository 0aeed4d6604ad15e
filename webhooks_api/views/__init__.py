"""REST views, one module per resource; all under /api/v1/webhooks and authenticated."""

from flask import Flask
from flask_smorest import Api

from ..auth import authenticate

API_PREFIX = "/api/v1/webhooks"


def register_views(app: Flask, api: Api) -> None:
    from . import health, metrics, publish, subscriptions

    for blueprint in (subscriptions.blp, publish.blp):
        api.register_blueprint(blueprint, url_prefix=API_PREFIX)
        # On the app, not the module-level blueprint: create_app may run more than once.
        app.before_request_funcs.setdefault(blueprint.name, []).append(authenticate)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
