"""Portal settings: where the tenant's portal may be embedded, and how it looks."""

from flask.views import MethodView

from webhooks_api.auth import current_tenant_id
from webhooks_api.extensions import db
from webhooks_api.http.portal_schemas import PortalSettingsSchema, PortalSettingsUpdateSchema
from webhooks_api.http.views.base import ApiBlueprint
from webhooks_api.services import portal_settings as service

blp = ApiBlueprint("portal_settings", __name__,
                   description="Embedding and branding of the tenant's portal")


@blp.route("/portal-settings")
class PortalSettings(MethodView):
    @blp.response(200, PortalSettingsSchema)
    def get(self):
        """Read the portal settings (the defaults until set)."""
        return service.get_portal_settings(db.session, current_tenant_id())

    @blp.arguments(PortalSettingsUpdateSchema, example={
        "allowed_origins": ["https://app.example.com"], "title": "Acme webhooks",
        "accent_color": "#aa3300"})
    @blp.response(200, PortalSettingsSchema)
    def patch(self, changes):
        """Change the portal settings; the origins sent replace the stored list."""
        return service.update_portal_settings(db.session, current_tenant_id(), changes)
