"""Publishing an event over HTTP."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.config import current_settings
from webhooks_api.extensions import db
from webhooks_api.http.schemas import (
    IdempotencyHeadersSchema,
    PublishResultSchema,
    PublishSchema,
)
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services.publishing import publish_event

blp = ApiBlueprint("publish", __name__, description="Publish events")


@blp.route("/publish")
class Publish(MethodView):
    @blp.arguments(PublishSchema, example={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_42", "amount": 4200},
        "metadata": {"source": "billing"}})
    @blp.arguments(IdempotencyHeadersSchema, location="headers", as_kwargs=True)
    @blp.response(202, PublishResultSchema)
    def post(self, payload, idempotency_key=None):
        """Publish an event: stored first, then fanned out to matching subscriptions.

        A repeat with the same Idempotency-Key stores nothing new and answers the same
        event id."""
        stored = publish_event(
            db.session, current_settings(), current_tenant_id(), payload["event_type"],
            payload["data"], payload.get("metadata"), event_id=idempotency_key,
        )
        return {"event_id": stored.event.event_id, "event_type": stored.event.event_type,
                "created": stored.created}
