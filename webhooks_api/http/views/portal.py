"""The portal API under /api/v1/portal: the operations a portal session may call.

They are the views of /api/v1/webhooks themselves, mounted a second time on the same
paths (no twin code): `OPERATIONS` is the allow-list, each path with the view and the
methods it answers here; nothing else is routed under the prefix, and a portal token is
refused (401) on every route outside it. What differs is who asks: this blueprint takes a
portal session token instead of an API key (auth.authenticate_portal_session), which
gives the tenant, narrows the request's database session to the bound subscriptions, and
refuses the writes of a read-only session (403). An API key is refused here (401).
"""

from __future__ import annotations

from flask.views import MethodView

from webhooks_api.auth import (
    READ_METHODS,
    authenticate_portal_session,
    current_portal_access,
    end_portal_request,
)
from webhooks_api.http.portal_schemas import PortalAccessSchema
from webhooks_api.http.views import deliveries, event_types, subscriptions
from webhooks_api.http.views.base import ApiBlueprint

PORTAL_SECURITY = [{"portalSession": []}]

_SUBSCRIPTION = "/subscriptions/<string:subscription_id>"
_DELIVERY = "/deliveries/<string:delivery_id>"
OPERATIONS = (
    ("/subscriptions", subscriptions.Subscriptions, ("GET", "POST")),
    (_SUBSCRIPTION, subscriptions.SubscriptionById, ("GET", "PATCH", "DELETE")),
    (f"{_SUBSCRIPTION}/rotate-secret", subscriptions.RotateSecret, ("POST",)),
    (f"{_SUBSCRIPTION}/test", subscriptions.SendTest, ("POST",)),
    (f"{_SUBSCRIPTION}/stats", subscriptions.Stats, ("GET",)),
    (f"{_SUBSCRIPTION}/deliveries", subscriptions.SubscriptionDeliveries, ("GET",)),
    (f"{_SUBSCRIPTION}/replay", subscriptions.Replay, ("POST",)),
    (f"{_SUBSCRIPTION}/recover", subscriptions.Recover, ("POST",)),
    ("/deliveries", deliveries.Deliveries, ("GET",)),
    (_DELIVERY, deliveries.DeliveryById, ("GET",)),
    (f"{_DELIVERY}/retry", deliveries.RetryDelivery, ("POST",)),
    # The catalogue, read only: what the subscription form offers (no custom types added).
    ("/events", event_types.EventTypes, ("GET",)),
    ("/events/<string:event_type>", event_types.EventTypeByName, ("GET",)),
)


class PortalBlueprint(ApiBlueprint):
    """Documents every operation with the portal's credential, and each write with the
    403 of a read-only (or, for a create, bound) session."""

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for method, doc in self._docs[endpoint].items():
            if method == "parameters":
                continue
            doc.setdefault("manual_doc", {})["security"] = PORTAL_SECURITY
            if method.upper() not in READ_METHODS:
                doc.setdefault("response", {}).setdefault("responses", {}) \
                    .setdefault(403, []).append("FORBIDDEN")


blp = PortalBlueprint("portal", __name__, authenticate_with=authenticate_portal_session,
                      description="The embeddable portal's API, for a portal session token")
blp.teardown_request(end_portal_request)

for path, view, methods in OPERATIONS:
    blp.add_url_rule(path, view.__name__, view, methods=list(methods))


@blp.route("/session")
class PortalSessionAccess(MethodView):
    @blp.response(200, PortalAccessSchema)
    def get(self):
        """What this portal session may do: its expiry, its subscriptions, read-only."""
        return current_portal_access()
