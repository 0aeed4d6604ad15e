"""marshmallow schemas for every request and response body of the REST API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .ids import EVENT_ID_PATTERN


class SubscriptionCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    event_types = fields.List(
        fields.String(validate=validate.Length(min=1, max=255)),
        required=True, validate=validate.Length(min=1, max=100),
    )
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    timeout_seconds = fields.Integer(load_default=30, validate=validate.Range(min=5, max=300))
    headers = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=256)),
                          values=fields.String(validate=validate.Length(max=4096)),
                          load_default=dict)
    metadata = fields.Dict(load_default=dict)
    is_active = fields.Boolean(load_default=True)


class SubscriptionSchema(Schema):
    id = fields.String()
    url = fields.String()
    event_types = fields.List(fields.String())
    description = fields.String(allow_none=True)
    is_active = fields.Boolean()
    status = fields.String()
    disabled_reason = fields.String(allow_none=True)
    timeout_seconds = fields.Integer()
    headers = fields.Dict()
    metadata = fields.Dict(attribute="extra_metadata")
    success_count = fields.Integer()
    failure_count = fields.Integer()
    consecutive_failures = fields.Integer()
    last_success_at = fields.DateTime(allow_none=True)
    last_failure_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SubscriptionWithSecretSchema(SubscriptionSchema):
    secret = fields.String(metadata={"description": "Shown only on create and rotate"})


class PublishSchema(Schema):
    event_type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    data = fields.Raw(required=True, metadata={"type": "object"})
    metadata = fields.Dict(load_default=None, allow_none=True)


class PublishHeadersSchema(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key", validate=validate.Regexp(EVENT_ID_PATTERN)
    )


class PublishResultSchema(Schema):
    event_id = fields.String()
    event_type = fields.String()
    created = fields.Boolean(metadata={"description": "false when the id was seen before"})
