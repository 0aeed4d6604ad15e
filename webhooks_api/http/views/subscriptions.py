"""Subscriptions: a tenant's endpoints."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.config import current_settings
from webhooks_api.extensions import db
from webhooks_api.http.schemas import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    PingSchema,
    RecoverSchema,
    ReplaySchema,
    ResentSchema,
    RotateSecretSchema,
    StatsQuerySchema,
    StatsSchema,
    SubscriptionCreateSchema,
    SubscriptionPageSchema,
    SubscriptionQuerySchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
    SubscriptionWithSecretSchema,
)
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import ping, recovery, subscription_stats
from webhooks_api.services import subscriptions as service

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
        "headers": {"X-Team": "billing"}, "metadata": {"owner": "billing"},
        "filter": {"path": "data.amount_due", "gte": 10000}})
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
        """Change a subscription; is_active pauses it or re-activates it, filter null
        removes its payload filter."""
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
        """List one subscription's deliveries, newest first.

        Takes the search of `GET /deliveries` too, payload filters (`data.<path>`,
        `metadata.<path>`) included."""
        return service.list_subscription_deliveries(db.session, current_tenant_id(),
                                                    subscription_id, **query)


@blp.route("/subscriptions/<string:subscription_id>/replay")
class Replay(MethodView):
    @blp.arguments(ReplaySchema, example={"since": "2026-11-29T12:00:00Z"})
    @blp.response(202, ResentSchema)
    @blp.errors(404, 409)
    def post(self, payload, subscription_id):
        """Re-send every delivery never delivered since `since`, oldest first.

        Default `since`: when the subscription was last disabled or paused. 409 unless it
        is active."""
        return recovery.replay(db.session, current_tenant_id(), subscription_id, **payload)


@blp.route("/subscriptions/<string:subscription_id>/recover")
class Recover(MethodView):
    @blp.arguments(RecoverSchema, example={"since": "2026-11-28T00:00:00Z"})
    @blp.response(202, ResentSchema)
    @blp.errors(404, 409, 422)
    def post(self, payload, subscription_id):
        """Re-send every failed delivery created in the window (its last 14 days at most).

        409 unless the subscription is active."""
        return recovery.recover(db.session, current_tenant_id(), subscription_id, **payload)


@blp.route("/subscriptions/<string:subscription_id>/test")
class SendTest(MethodView):
    @blp.response(200, PingSchema)
    @blp.errors(404, 429)
    def post(self, subscription_id):
        """Send a `webhook.test` event to this subscription only, now; returns the attempt.

        Waits for a worker's attempt up to the subscription's timeout (plus a margin);
        `attempt` is null if none was made by then. 429 (with `Retry-After`) while too
        many tests of the tenant, or of all tenants, are waiting."""
        return ping.send_test(db.session, current_settings(), current_tenant_id(),
                              subscription_id)


@blp.route("/subscriptions/<string:subscription_id>/stats")
class Stats(MethodView):
    @blp.arguments(StatsQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, StatsSchema)
    @blp.errors(400, 404, 422)
    def get(self, subscription_id, **query):
        """Success, failure and pending counts, success rate and latency percentiles over
        the window and per time bucket."""
        return subscription_stats.subscription_stats(db.session, current_tenant_id(),
                                                     subscription_id, **query)
