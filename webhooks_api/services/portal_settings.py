"""A tenant's portal settings: which origins may frame the portal, its title and colour.

The origins become the portal page's `Content-Security-Policy: frame-ancestors`; a tenant
that set none (or has no row yet) gets `'none'`, so its portal opens only as a page of
its own. Written with one upsert, so two first PATCHes at once do not collide.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webhooks_api.domain.models import PortalSettings
from webhooks_api.domain.origins import InvalidOriginError, normalize_origin
from webhooks_api.errors import InvalidInputError
from webhooks_api.services.portal_sessions import portal_session_tenant


def get_portal_settings(session: Session, tenant_id: str) -> PortalSettings:
    """The tenant's settings, or the defaults (an unsaved row) when it set none."""
    settings = session.get(PortalSettings, tenant_id)
    return settings or PortalSettings(tenant_id=tenant_id, allowed_origins=[], title=None,
                                      accent_color=None, updated_at=None)


def update_portal_settings(session: Session, tenant_id: str, changes: dict) -> PortalSettings:
    """Apply a PATCH (the fields sent replace the stored ones); origins are normalized."""
    changes = dict(changes)
    if "allowed_origins" in changes:
        changes["allowed_origins"] = _normalized_origins(changes["allowed_origins"])
    statement = insert(PortalSettings).values(tenant_id=tenant_id, **changes)
    session.execute(statement.on_conflict_do_update(
        index_elements=[PortalSettings.tenant_id],
        set_={**{name: statement.excluded[name] for name in changes},
              "updated_at": func.now()}))
    session.commit()
    return get_portal_settings(session, tenant_id)


def _normalized_origins(origins: list[str]) -> list[str]:
    normalized, errors = [], {}
    for index, origin in enumerate(origins):
        try:
            normalized.append(normalize_origin(origin))
        except InvalidOriginError as error:
            errors[str(index)] = [str(error)]
    if errors:
        raise InvalidInputError("the portal settings are not valid",
                                {"allowed_origins": errors})
    return list(dict.fromkeys(normalized))


def portal_page_settings(session: Session, portal_session_id: str) -> PortalSettings | None:
    """The settings the page of a portal session is served with; None for an unknown
    session (its page is a 404 that no origin may frame)."""
    tenant_id = portal_session_tenant(session, portal_session_id)
    return None if tenant_id is None else get_portal_settings(session, tenant_id)
