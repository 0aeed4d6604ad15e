"""Portal sessions: what the tenant's server creates to open the portal for a customer."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.extensions import db
from webhooks_api.http.portal_schemas import PortalSessionCreateSchema, PortalSessionSchema
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import portal_sessions as service

blp = ApiBlueprint("portal_sessions", __name__,
                   description="Short-lived, scoped sessions of the embeddable portal")


@blp.route("/portal-sessions")
class PortalSessions(MethodView):
    @blp.arguments(PortalSessionCreateSchema, example={"ttl_seconds": 3600,
                                                       "read_only": True})
    @blp.response(201, PortalSessionSchema)
    @blp.errors(422)
    def post(self, payload):
        """Open a portal session; its `url` goes in an iframe, its token is shown once."""
        return service.create_portal_session(db.session, current_tenant_id(), **payload)


@blp.route("/portal-sessions/<string:session_id>")
class PortalSessionById(MethodView):
    @blp.response(204)
    @blp.errors(404)
    def delete(self, session_id):
        """Revoke a portal session: its token answers 401 from now on."""
        service.revoke_portal_session(db.session, current_tenant_id(), session_id)
