"""Bearer API-key authentication: every API view runs for exactly one tenant."""

from __future__ import annotations

from flask import g, request
from flask_smorest import abort

from webhooks_api.extensions import db
from webhooks_api.services.tenants import tenant_for_api_key

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="webhooks"'}


def authenticate() -> None:
    """before_request hook of the API blueprints: sets `g.tenant_id` or answers 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, api_key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        abort(401, message="send 'Authorization: Bearer <api key>'", headers=_CHALLENGE)
    tenant_id = tenant_for_api_key(db.session, api_key.strip())
    if tenant_id is None:
        abort(401, message="unknown or revoked API key", headers=_CHALLENGE)
    g.tenant_id = tenant_id


def current_tenant_id() -> str:
    return g.tenant_id
