"""REST views, one module per resource; all under /api/v1/webhooks and authenticated."""

from flask import Flask
from flask_smorest import Api

from ..auth import authenticate

API_PREFIX = "/api/v1/webhooks"


def register_views(app: Flask, api: Api) -> None:
    from . import health, publish, subscriptions

    for blueprint in (subscriptions.blp, publish.blp):
        blueprint.before_request(authenticate)
        api.register_blueprint(blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(health.bp)
