"""Subscriptions: a tenant's endpoints."""

from flask.views import MethodView

from ..app import current_settings
from ..auth import current_tenant_id
from ..extensions import db
from ..schemas import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    RotateSecretSchema,
    SubscriptionCreateSchema,
    SubscriptionPageSchema,
    SubscriptionQuerySchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
    SubscriptionWithSecretSchema,
)
from ..services import subscriptions as service
from .base import ApiBlueprint

blp = ApiBlueprint("subscriptions", __name__, description="Webhook endpoints of a tenant")


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @blp.arguments(SubscriptionQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, SubscriptionPageSchema)
    def get(self, **query):
        """List subscriptions, newest first (deleted ones are not listed)."""
        return service.list_subscriptions(db.session, current_tenant_id(), **query)

    @blp.arguments(SubscriptionCreateSchema, example={
        "url": "https://example.com/webhooks", "event_types": ["invoice.*", "payment.failed"],
        "description": "Billing events", "timeout_seconds": 30,
        "headers": {"X-Team": "billing"}, "metadata": {"owner": "billing"}})
    @blp.response(201, SubscriptionWithSecretSchema)
    def post(self, payload):
        """Create a subscription; the response carries its signing secret, once."""
        return service.create_subscription(
            db.session, current_settings(), current_tenant_id(), **payload
        )


@blp.route("/subscriptions/<string:subscription_id>")
class SubscriptionById(MethodView):
    @blp.response(200, SubscriptionSchema)
    @blp.errors(404)
    def get(self, subscription_id):
        """Read one subscription with its statistics."""
        return service.get_subscription(db.session, current_tenant_id(), subscription_id)

    @blp.arguments(SubscriptionUpdateSchema, example={"is_active": True})
    @blp.response(200, SubscriptionSchema)
    @blp.errors(404)
    def patch(self, changes, subscription_id):
        """Change a subscription; is_active pauses it or re-activates it."""
        return service.update_subscription(
            db.session, current_settings(), current_tenant_id(), subscription_id, changes
        )

    @blp.response(204)
    @blp.errors(404)
    def delete(self, subscription_id):
        """Delete a subscription: it stops at once; its deliveries stay readable."""
        service.delete_subscription(db.session, current_tenant_id(), subscription_id)


@blp.route("/subscriptions/<string:subscription_id>/rotate-secret")
class RotateSecret(MethodView):
    @blp.arguments(RotateSecretSchema, example={"grace_period_seconds": 86400})
    @blp.response(200, SubscriptionWithSecretSchema)
    @blp.errors(404)
    def post(self, payload, subscription_id):
        """Issue a new signing secret; the old one also signs during the grace period."""
        return service.rotate_secret(
            db.session, current_settings(), current_tenant_id(), subscription_id,
            payload["grace_period_seconds"],
        )


@blp.route("/subscriptions/<string:subscription_id>/deliveries")
class SubscriptionDeliveries(MethodView):
    @blp.arguments(DeliveryQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, DeliveryPageSchema)
    @blp.errors(404)
    def get(self, subscription_id, **query):
        """List one subscription's deliveries, newest first."""
        return service.list_subscription_deliveries(db.session, current_tenant_id(),
                                                    subscription_id, **query)
