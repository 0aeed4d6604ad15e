"""REST views, one module per resource; all under /api/v1/webhooks and authenticated,
except the health probes at the root."""

from flask import Flask
from flask_smorest import Api

API_PREFIX = "/api/v1/webhooks"


def register_views(app: Flask, api: Api) -> None:
    from webhooks_api.http.views import (
        bulk_retries,
        deliveries,
        event_types,
        health,
        metrics,
        publish,
        subscriptions,
    )

    for blueprint in (subscriptions.blp, deliveries.blp, bulk_retries.blp, event_types.blp,
                      publish.blp):
        api.register_blueprint(blueprint, url_prefix=API_PREFIX)
    api.register_blueprint(health.blp)
    app.register_blueprint(metrics.bp)
