"""Subscriptions: a tenant's endpoints."""

from flask.views import MethodView
from flask_smorest import Blueprint

from ..app import current_settings
from ..auth import current_tenant_id
from ..extensions import db
from ..schemas import SubscriptionCreateSchema, SubscriptionSchema, SubscriptionWithSecretSchema
from ..services import subscriptions as service

blp = Blueprint("subscriptions", __name__, description="Webhook endpoints of a tenant")


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionWithSecretSchema)
    def post(self, payload):
        """Create a subscription; the response carries its signing secret, once."""
        return service.create_subscription(
            db.session, current_settings(), current_tenant_id(), **payload
        )


@blp.route("/subscriptions/<string:subscription_id>")
class SubscriptionById(MethodView):
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_id):
        """Read one subscription with its statistics."""
        return service.get_subscription(db.session, current_tenant_id(), subscription_id)
