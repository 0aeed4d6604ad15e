"""Event types: the built-in catalogue and a tenant's own types."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.extensions import db
from webhooks_api.http.schemas import (
    EventTypeCreateSchema,
    EventTypePageSchema,
    EventTypeSchema,
    PageQuerySchema,
)
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import event_types as service

blp = ApiBlueprint("event_types", __name__, description="Event types tenants can publish")


@blp.route("/events")
class EventTypes(MethodView):
    @blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, EventTypePageSchema)
    def get(self, **query):
        """List the built-in and the tenant's own event types, by name."""
        return service.list_event_types(db.session, current_tenant_id(), **query)

    @blp.arguments(EventTypeCreateSchema, example={
        "name": "acme.order.shipped", "description": "An order left the warehouse.",
        "schema": {"type": "object", "required": ["order_id"],
                   "properties": {"order_id": {"type": "string"}}}})
    @blp.response(201, EventTypeSchema)
    @blp.errors(409)
    def post(self, payload):
        """Register a custom event type, optionally with a JSON Schema for its data."""
        return service.register_event_type(db.session, current_tenant_id(), **payload)


@blp.route("/events/<string:event_type>")
class EventTypeByName(MethodView):
    @blp.response(200, EventTypeSchema)
    @blp.errors(404)
    def get(self, event_type):
        """Read one event type."""
        return service.get_event_type(db.session, current_tenant_id(), event_type)
