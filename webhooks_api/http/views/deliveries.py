"""Deliveries: what was sent where, every attempt, and manual re-sends."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.extensions import db
from webhooks_api.http.schemas import (
    DeliveryDetailSchema,
    DeliveryListQuerySchema,
    DeliveryPageSchema,
    DeliverySchema,
)
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import deliveries as service

blp = ApiBlueprint("deliveries", __name__, description="Deliveries and their attempts")


@blp.route("/deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryListQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, DeliveryPageSchema)
    def get(self, **query):
        """List the tenant's deliveries, newest first, across all subscriptions.

        Search by what was delivered: besides the parameters below, any parameter named
        `data.<path>` or `metadata.<path>` keeps the deliveries whose event has that value
        at that path of its `data` or `metadata` (dots separate nested keys:
        `?data.customer.id=cus_1`). The value matches as a string and, when it is written
        as a JSON number, `true`, `false` or `null`, also as that value: `data.amount=100`
        matches `100` and `"100"`. Paths do not reach into arrays. At most 10 such filters;
        all filters, of every kind, must match."""
        return service.list_deliveries(db.session, current_tenant_id(), **query)


@blp.route("/deliveries/<string:delivery_id>")
class DeliveryById(MethodView):
    @blp.response(200, DeliveryDetailSchema)
    @blp.errors(404)
    def get(self, delivery_id):
        """Read one delivery with every attempt."""
        return service.get_delivery(db.session, current_tenant_id(), delivery_id)


@blp.route("/deliveries/<string:delivery_id>/retry")
class RetryDelivery(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.errors(404, 409)
    def post(self, delivery_id):
        """Send the delivery again now, once (trigger `manual`), whatever its state.

        409 when its subscription is paused, disabled or deleted, or while an attempt is
        in flight."""
        return service.retry_delivery(db.session, current_tenant_id(), delivery_id)
