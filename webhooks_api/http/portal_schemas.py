"""Request and response bodies of the portal: its sessions, its settings, and what a
session may do (the rules of schemas.py: strict requests, required response fields)."""

from __future__ import annotations

import re

from marshmallow import Schema, fields, validate

from webhooks_api.domain.ids import ID_PATTERN
from webhooks_api.domain.origins import MAX_ORIGINS
from webhooks_api.http.schemas import StrictBoolean, Text
from webhooks_api.services.portal_sessions import (
    DEFAULT_TTL_SECONDS,
    MAX_BOUND_SUBSCRIPTIONS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
)

ACCENT_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_TITLE_LENGTH = 100


class PortalSessionCreateSchema(Schema):
    ttl_seconds = fields.Integer(
        strict=True, load_default=DEFAULT_TTL_SECONDS,
        validate=validate.Range(min=MIN_TTL_SECONDS, max=MAX_TTL_SECONDS),
        metadata={"description": "How long the token works"})
    subscription_ids = fields.List(
        Text(validate=validate.Regexp(ID_PATTERN, error="must be a subscription id")),
        validate=validate.Length(min=1, max=MAX_BOUND_SUBSCRIPTIONS),
        metadata={"description": "Bind the session to these subscriptions: it sees no "
                                 "other and creates none. Omit for all of the tenant's"})
    read_only = StrictBoolean(load_default=False, metadata={
        "description": "Refuse every write (403); the portal shows no write controls"})


class PortalSessionSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True, metadata={
        "description": "/portal/<id>#<token>: the page to put in an iframe, on this "
                       "service's origin; the token is in the fragment, which browsers "
                       "never send to a server"})
    token = fields.String(required=True, metadata={
        "description": "The Bearer credential of /api/v1/portal; shown only here"})
    expires_at = fields.DateTime(required=True)
    subscription_ids = fields.List(fields.String(), required=True, allow_none=True)
    read_only = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class PortalAccessSchema(Schema):
    """What the portal session in use may do (the page hides what it may not)."""

    id = fields.String(attribute="session_id", required=True)
    expires_at = fields.DateTime(required=True)
    subscription_ids = fields.Function(
        lambda access: None if access.subscription_ids is None
        else sorted(access.subscription_ids),
        required=True, metadata={"type": "array", "items": {"type": "string"},
                                 "nullable": True,
                                 "description": "null: every subscription of the tenant"})
    read_only = fields.Boolean(required=True)
    can_create = fields.Boolean(required=True, metadata={
        "description": "false when read-only or bound to some subscriptions"})


def _origins(**kwargs) -> fields.List:
    return fields.List(
        Text(validate=validate.Length(min=1, max=255)),
        validate=validate.Length(max=MAX_ORIGINS),
        metadata={"description": "Origins (scheme://host[:port]; https, or http for "
                                 "localhost) whose pages may frame the portal: its "
                                 "Content-Security-Policy frame-ancestors. Empty: none"},
        **kwargs)


class PortalSettingsUpdateSchema(Schema):
    """PATCH: only the fields sent change; null resets a title or colour to the default."""

    allowed_origins = _origins()
    title = Text(allow_none=True, validate=validate.Length(min=1, max=MAX_TITLE_LENGTH),
                 metadata={"description": "The portal's heading and page title"})
    accent_color = Text(allow_none=True, validate=validate.Regexp(
        ACCENT_COLOR, error="must be a colour like '#0969da'"),
        metadata={"description": "#rrggbb of the portal's buttons and links"})


class PortalSettingsSchema(Schema):
    allowed_origins = fields.List(fields.String(), required=True)
    title = fields.String(required=True, allow_none=True)
    accent_color = fields.String(required=True, allow_none=True)
    updated_at = fields.DateTime(required=True, allow_none=True,
                                 metadata={"description": "null until first set"})
