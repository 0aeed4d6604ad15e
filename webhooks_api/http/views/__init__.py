"""REST views, one module per resource; all under /api/v1/webhooks and authenticated by
an API key, except the health probes at the root and the portal API (/api/v1/portal, the
same views again for a portal session token: views/portal.py)."""

from flask import Flask
from flask_smorest import Api

API_PREFIX = "/api/v1/webhooks"
PORTAL_API_PREFIX = "/api/v1/portal"


def register_views(app: Flask, api: Api) -> None:
    from webhooks_api.http.views import (
        bulk_retries,
        deliveries,
        event_types,
        health,
        metrics,
        portal,
        portal_sessions,
        portal_settings,
        publish,
        subscriptions,
    )

    for blueprint in (subscriptions.blp, deliveries.blp, bulk_retries.blp, event_types.blp,
                      publish.blp, portal_sessions.blp, portal_settings.blp):
        api.register_blueprint(blueprint, url_prefix=API_PREFIX)
    api.register_blueprint(portal.blp, url_prefix=PORTAL_API_PREFIX)
    api.register_blueprint(health.blp)
    app.register_blueprint(metrics.bp)
