"""Request and response bodies of the bulk retry jobs (`/bulk-retries`)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from webhooks_api.domain.ids import ID_PATTERN
from webhooks_api.domain.models import BULK_RETRY_DELIVERY_STATUSES, BULK_RETRY_STATUSES
from webhooks_api.http.schemas import EVENT_TYPE_NAME, Text, UtcDateTime


class BulkRetryCreateSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(BULK_RETRY_DELIVERY_STATUSES),
                           metadata={"description": "The deliveries to re-send: failed or "
                                                    "disabled ones"})
    since = UtcDateTime(required=True, metadata={
        "description": "Created at or after (UTC if no offset)"})
    until = UtcDateTime(required=True, metadata={
        "description": "Created before; at most 14 days after since"})
    event_type = Text(validate=[validate.Length(max=255), EVENT_TYPE_NAME])
    subscription_id = Text(validate=validate.Regexp(ID_PATTERN, error="not a subscription id"))
    response_status = fields.Integer(strict=True, validate=validate.Range(min=100, max=599),
                                     metadata={"description": "The last attempt's HTTP "
                                                              "status"})


class BulkRetryFilterSchema(Schema):
    status = fields.String(required=True)
    since = fields.DateTime(required=True)
    until = fields.DateTime(required=True)
    event_type = fields.String(required=True, allow_none=True)
    subscription_id = fields.String(required=True, allow_none=True)
    response_status = fields.Integer(required=True, allow_none=True)


class BulkRetrySchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(BULK_RETRY_STATUSES),
                           metadata={"description": "running until every re-send it queued "
                                                    "has been attempted; then done, or "
                                                    "cancelled"})
    filter = fields.Nested(BulkRetryFilterSchema, required=True)
    matched = fields.Integer(required=True, metadata={
        "description": "Deliveries matching the filter when the job was created"})
    queued = fields.Integer(required=True, metadata={"description": "Re-sends queued so far"})
    done = fields.Integer(required=True, metadata={
        "description": "Re-sends whose attempt finished, whatever its outcome"})
    skipped = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                          metadata={"description": "Matches not re-sent, by reason: "
                                    "subscription_paused, subscription_disabled, "
                                    "subscription_deleted, attempt_in_progress, "
                                    "changed_since_matched"})
    per_second = fields.Integer(required=True, metadata={
        "description": "Most re-sends queued per second for the tenant "
                       "(WEBHOOKS_BULK_RETRY_PER_SECOND when the job was created)"})
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(required=True, allow_none=True)
