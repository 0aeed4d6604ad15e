"""Bearer authentication: every API view runs for exactly one tenant.

Two credentials, each valid on its own side only. A tenant API key opens
`/api/v1/webhooks/...`; a portal session token (webhooks_api.services.portal_sessions)
opens `/api/v1/portal/...`, where it also sets the session's subscription scope and its
read-only rule. Each is refused with 401 on the other's routes, so a token handed to a
customer's browser never reaches publish, the portal sessions or the settings, and the
portal cannot be driven with a full key.
"""

from __future__ import annotations

from flask import g, request
from flask_smorest import abort

from webhooks_api.errors import ForbiddenError
from webhooks_api.extensions import db
from webhooks_api.services.portal_scope import clear_subscription_scope, limit_to_subscriptions
from webhooks_api.services.portal_sessions import (
    PortalAccess,
    PortalSessionRefusedError,
    is_portal_token,
    portal_access,
)
from webhooks_api.services.tenants import tenant_for_api_key

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="webhooks"'}
_PORTAL_CHALLENGE = 'Bearer realm="webhooks-portal"'
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _bearer(what: str, challenge: dict[str, str]) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        abort(401, message=f"send 'Authorization: Bearer <{what}>'", headers=challenge)
    return credential.strip()


def authenticate() -> None:
    """before_request hook of the API blueprints: sets `g.tenant_id` or answers 401."""
    api_key = _bearer("api key", _CHALLENGE)
    if is_portal_token(api_key):
        abort(401, message="a portal session token is valid only under /api/v1/portal",
              headers=_CHALLENGE)
    tenant_id = tenant_for_api_key(db.session, api_key)
    if tenant_id is None:
        abort(401, message="unknown or revoked API key", headers=_CHALLENGE)
    g.tenant_id = tenant_id


def authenticate_portal_session() -> None:
    """before_request hook of the portal API: sets `g.tenant_id` and `g.portal_access`,
    narrows the request's database session to the bound subscriptions, and refuses the
    writes of a read-only session (403); a missing, unknown, revoked or expired token
    answers 401 (its `error_code` says which)."""
    challenge = {"WWW-Authenticate": _PORTAL_CHALLENGE}
    token = _bearer("portal session token", challenge)
    if not is_portal_token(token):
        abort(401, message="send a portal session token (POST "
                           "/api/v1/webhooks/portal-sessions); API keys are not accepted "
                           "under /api/v1/portal", headers=challenge)
    try:
        access = portal_access(db.session, token)
    except PortalSessionRefusedError as refusal:  # RFC 6750's answer to a dead token
        refusal.headers["WWW-Authenticate"] = f'{_PORTAL_CHALLENGE}, error="invalid_token"'
        raise
    g.tenant_id = access.tenant_id
    g.portal_access = access
    if access.read_only and request.method not in READ_METHODS:
        raise ForbiddenError("this portal session is read-only",
                             error_code="portal_session_read_only")
    if access.subscription_ids is not None:
        limit_to_subscriptions(db.session, access.subscription_ids)


def end_portal_request(_exception: BaseException | None = None) -> None:
    """teardown_request of the portal API: the scope never outlives its request (tests
    and CLI code may share the app context's session)."""
    clear_subscription_scope(db.session)


def current_tenant_id() -> str:
    return g.tenant_id


def current_portal_access() -> PortalAccess:
    return g.portal_access
