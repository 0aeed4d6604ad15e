"""marshmallow schemas for every request and response body of the REST API.

Requests are strict: unknown fields are refused (marshmallow's RAISE), numbers and booleans
must be JSON numbers and booleans, and every string or JSON value must be storable by
PostgreSQL (see jsonvalues). Rules that need the database or the settings (known event
types, the target URL rules, the metadata size limit) are the services' job. Response
schemas mark every field they always carry as required, so the OpenAPI document states
exactly what clients receive.
"""

from __future__ import annotations

import re
from datetime import UTC

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_dump,
    pre_load,
    validate,
    validates_schema,
)

from webhooks_api.domain.catalogue import EVENT_TYPE_PATTERN
from webhooks_api.domain.custom_headers import MASK, masked
from webhooks_api.domain.headers import MAX_CUSTOM_HEADERS
from webhooks_api.domain.ids import EVENT_ID_PATTERN, ID_PATTERN
from webhooks_api.domain.json_values import json_value_error, text_error
from webhooks_api.domain.models import DELIVERY_STATUSES, SUBSCRIPTION_STATUSES
from webhooks_api.domain.payload_filters import MAX_FILTER_BYTES, MAX_FILTER_DEPTH, OPERATORS
from webhooks_api.domain.payload_search import (
    MAX_MATCHES,
    is_payload_parameter,
    payload_match,
)
from webhooks_api.receivers.circuit import circuit_states
from webhooks_api.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

URL_CHARACTERS = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
# What a subscription may list: an event type, `category.*` or `*` (catalogue.py).
EVENT_FILTER_PATTERN = re.compile(
    rf"^(\*|[a-z][a-z0-9_]*\.\*|{EVENT_TYPE_PATTERN.pattern.strip('^$')})$")


class Text(fields.String):
    """A string PostgreSQL can store (no NUL, no unpaired surrogate)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if error := text_error(text):
            raise ValidationError(error)
        return text


class JsonObject(fields.Dict):
    """A JSON object PostgreSQL can store as jsonb."""

    def _deserialize(self, value, attr, data, **kwargs):
        mapping = super()._deserialize(value, attr, data, **kwargs)
        if error := json_value_error(mapping):
            raise ValidationError(error)
        return mapping


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time, UTC when it has no offset, converted to UTC (PostgreSQL refuses
    offsets beyond 15:59 that Python accepts)."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("out of range") from None


class StrictBoolean(fields.Boolean):
    """Only JSON true and false: not 1, "yes" or "true"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


EVENT_TYPE_NAME = validate.Regexp(
    EVENT_TYPE_PATTERN, error="must be a lower-case dotted name like 'invoice.created'"
)


# Lists

class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = Text(validate=validate.Length(min=1, max=1024),
                  metadata={"description": "next_cursor of the previous page"})


def _page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict({
        # many=True: the item schema dumps the page as one list (its pre_dump sees it all).
        "items": fields.Nested(item_schema, many=True, required=True),
        "next_cursor": fields.String(required=True, allow_none=True,
                                     metadata={"description": "null on the last page"}),
    }, name=name)


# Subscriptions

def _url(**kwargs) -> Text:
    return Text(validate=[validate.Length(min=1, max=2048),
                          validate.Regexp(URL_CHARACTERS, error="must not contain spaces "
                                                                "or control characters")],
                metadata={"description": "http(s) URL receiving the POSTs"}, **kwargs)


def _event_types(**kwargs) -> fields.List:
    return fields.List(
        Text(validate=[validate.Length(min=1, max=255), validate.Regexp(
            EVENT_FILTER_PATTERN,
            error="must be an event type like 'invoice.created' or a filter like "
                  "'invoice.*' or '*'")]),
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Event types and filters ('category.*', '*')"}, **kwargs,
    )


def _headers(**kwargs) -> fields.Dict:
    """Strings to strings here; the header rules (names, values, sizes, reserved names)
    live in header_rules.py and the subscription service, one place for API and CLI."""
    return fields.Dict(
        keys=Text(validate=validate.Length(min=1)),
        values=Text(),
        metadata={"maxProperties": MAX_CUSTOM_HEADERS,
                  "description": "Extra headers sent with every delivery, replaced whole "
                                 "on PATCH; Content-Type, Content-Length, Host, "
                                 "User-Agent, traceparent, tracestate, X-Webhook-* and "
                                 "webhook-* are reserved. "
                                 "Values are stored encrypted and never shown again; "
                                 f"{MASK!r} (what responses show) is refused as a value"},
        **kwargs,
    )


FILTER_DESCRIPTION = (
    "Only events whose delivered body matches are sent (docs/USAGE.md, \"Payload filters\"). "
    'A comparison {"path": "data.amount", "gte": 10000} (path: dotted keys from the '
    "body's top level, digits index an array, \\. a dot inside a key; operators "
    f"{', '.join(OPERATORS)}), or all / any (arrays of filters) and not (a filter), "
    f"at most {MAX_FILTER_DEPTH} levels deep and {MAX_FILTER_BYTES} bytes. Types are "
    "strict (true is not 1, \"10\" is not 10); a missing path matches only ne, nin and "
    "exists: false. null: every event of the subscribed types. A broken rule answers 422 "
    "with the place as the key of `errors`, e.g. filter.all[1].gt")
FILTER_EXAMPLE = {"all": [{"path": "data.amount", "gte": 10000},
                          {"path": "data.currency", "in": ["EUR", "USD"]}]}


def _filter(**kwargs) -> JsonObject:
    """The shape here (an object PostgreSQL can store); its grammar is checked by the
    service (webhooks_api.domain.payload_filters), which names the place of each error."""
    return JsonObject(allow_none=True, metadata={"description": FILTER_DESCRIPTION,
                                                 "example": FILTER_EXAMPLE}, **kwargs)


class SubscriptionUpdateSchema(Schema):
    """PATCH: only the fields sent change."""

    url = _url()
    event_types = _event_types()
    description = Text(allow_none=True, validate=validate.Length(max=1000))
    timeout_seconds = fields.Integer(strict=True, validate=validate.Range(min=5, max=300))
    headers = _headers()
    metadata = JsonObject(metadata={"description": "Free-form object, size-limited"})
    is_active = StrictBoolean(metadata={
        "description": "false pauses the subscription; true re-activates a paused or "
                       "disabled one and resets its failure streak"})
    filter = _filter()
    max_per_second = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=10000),
        metadata={"description": "Most attempts per second to this endpoint, across all "
                                 "workers; more wait (no attempt used). null: no limit"})


class SubscriptionCreateSchema(SubscriptionUpdateSchema):
    url = _url(required=True)
    event_types = _event_types(required=True)
    timeout_seconds = fields.Integer(strict=True, load_default=30,
                                     validate=validate.Range(min=5, max=300))
    headers = _headers(load_default=dict)
    metadata = JsonObject(load_default=dict,
                          metadata={"description": "Free-form object, size-limited"})
    is_active = StrictBoolean(load_default=True)
    filter = _filter(load_default=None)
    max_per_second = fields.Integer(
        strict=True, allow_none=True, load_default=None,
        validate=validate.Range(min=1, max=10000),
        metadata={"description": "Most attempts per second to this endpoint, across all "
                                 "workers; more wait (no attempt used). null: no limit"})


class SubscriptionQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(SUBSCRIPTION_STATUSES))
    is_active = fields.Boolean()


class _WithCircuitState:
    """A subscription as dumped: its own attributes, and its breaker's state read with the
    rest of its page."""

    def __init__(self, subscription, circuit_state: str):
        self._subscription = subscription
        self.circuit_state = circuit_state

    def __getattr__(self, name: str):
        return getattr(self._subscription, name)


class SubscriptionSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    description = fields.String(required=True, allow_none=True)
    is_active = fields.Boolean(required=True)
    status = fields.String(required=True, validate=validate.OneOf(SUBSCRIPTION_STATUSES))
    disabled_reason = fields.String(required=True, allow_none=True)
    disabled_at = fields.DateTime(required=True, allow_none=True)
    timeout_seconds = fields.Integer(required=True)
    filter = fields.Dict(attribute="payload_filter", required=True, allow_none=True,
                         metadata={"description": "The payload filter; null when none"})
    max_per_second = fields.Integer(required=True, allow_none=True)
    headers = fields.Function(
        lambda subscription: masked(subscription.header_ciphertexts), required=True,
        metadata={"type": "object", "additionalProperties": {"type": "string"},
                  "description": f"The custom header names, each value shown as {MASK!r}"})
    metadata = fields.Dict(attribute="extra_metadata", required=True)
    previous_secret_expires_at = fields.DateTime(
        required=True, allow_none=True,
        metadata={"description": "Until then deliveries are also signed with the previous "
                                 "secret"})
    success_count = fields.Integer(required=True)
    failure_count = fields.Integer(required=True)
    consecutive_failures = fields.Integer(required=True)
    last_success_at = fields.DateTime(required=True, allow_none=True)
    last_failure_at = fields.DateTime(required=True, allow_none=True)
    failing_since = fields.DateTime(
        required=True, allow_none=True,
        metadata={"description": "Start of the current unbroken run of failed attempts"})
    health_stage = fields.String(
        required=True, allow_none=True, validate=validate.OneOf(("failing", "disabled")),
        metadata={"description": "The last health warning published in this failure "
                                 "streak (docs/HEALTH.md)"})
    circuit_state = fields.String(
        required=True, validate=validate.OneOf(("closed", "open", "half_open")),
        metadata={"description": "closed, open or half_open: the circuit breaker shared "
                                 "by all workers (always closed while it is off)"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


    @pre_dump(pass_collection=True)
    def _read_circuit_states(self, data, many: bool, **_):
        """One Redis round trip for a whole page of subscriptions, not two per row."""
        subscriptions = list(data) if many else [data]
        states = circuit_states([subscription.id for subscription in subscriptions])
        wrapped = [_WithCircuitState(subscription, states[subscription.id])
                   for subscription in subscriptions]
        return wrapped if many else wrapped[0]


class SubscriptionWithSecretSchema(SubscriptionSchema):
    secret = fields.String(required=True,
                           metadata={"description": "Shown only on create and rotate"})


class RotateSecretSchema(Schema):
    grace_period_seconds = fields.Integer(
        strict=True, load_default=86400, validate=validate.Range(min=0, max=604800),
        metadata={"description": "How long deliveries stay signed with the old secret too"},
    )


# Deliveries

class ResponseStatus(fields.String):
    """`503` (one status code) or `5xx` (a class), loaded as the range of codes it names,
    both ends included."""

    PATTERN = re.compile(r"[1-5](?:[0-9]{2}|xx)")

    def __init__(self, **kwargs):
        super().__init__(metadata={
            "pattern": f"^{self.PATTERN.pattern}$",
            "description": "The response status of the delivery's last attempt: a code "
                           "(100-599) or a class (1xx-5xx). A last attempt that got no "
                           "response (timeout, connection error) has none"}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.PATTERN.fullmatch(text):
            raise ValidationError("must be a status code from 100 to 599, or a class "
                                  "from 1xx to 5xx")
        if text.endswith("xx"):
            return int(text[0]) * 100, int(text[0]) * 100 + 99
        return int(text), int(text)


def _query_values(query, name: str) -> list[str]:
    """Every value of a repeated query parameter (webargs hands the schema a proxy of the
    request's MultiDict)."""
    getlist = getattr(query, "getlist", None)
    return getlist(name) if getlist else [query[name]]


class DeliveryQuerySchema(PageQuerySchema):
    """Filters of a delivery list. The payload filters (`data.<path>`, `metadata.<path>`)
    are no fields, since any path may follow the prefix: they are set aside before the
    fields load (so an unknown parameter is still refused) and read from the original
    query afterwards, into `payload`."""

    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    event_type = Text(validate=[validate.Length(max=255), EVENT_TYPE_NAME])
    since = UtcDateTime(metadata={"description": "created at or after (UTC if no offset)"})
    until = UtcDateTime(metadata={"description": "created before"})
    response_status = ResponseStatus()
    event_id = Text(validate=validate.Regexp(EVENT_ID_PATTERN, error="not an event id"),
                    metadata={"description": "The id of the event delivered"})

    @pre_load
    def _set_payload_matches_aside(self, data, **kwargs):
        return {name: data[name] for name in data if not is_payload_parameter(name)}

    @validates_schema
    def _window(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("must be after since", "until")

    @post_load(pass_original=True)
    def _payload_matches(self, data, original, **kwargs):
        matches, errors = [], {}
        for name in (name for name in original if is_payload_parameter(name)):
            for value in _query_values(original, name):
                try:
                    matches.append(payload_match(name, value))
                except ValueError as error:
                    errors[name] = [str(error)]
        if len(matches) > MAX_MATCHES:
            errors.setdefault(matches[MAX_MATCHES].parameter, [
                f"at most {MAX_MATCHES} data.* and metadata.* filters in one request"])
        if errors:
            raise ValidationError(errors)
        return {**data, "payload": matches}


class DeliveryListQuerySchema(DeliveryQuerySchema):
    subscription_id = Text(validate=validate.Regexp(ID_PATTERN, error="not a subscription id"))


class AttemptErrorSchema(Schema):
    error_class = fields.String(required=True, allow_none=True,
                                metadata={"description": "timeout, connection_error, ..."})
    message = fields.String(required=True, allow_none=True)


class AttemptSchema(Schema):
    attempt_number = fields.Integer(required=True)
    trigger = fields.String(required=True, metadata={"description": "automatic, manual, swept"})
    started_at = fields.DateTime(required=True)
    duration_ms = fields.Integer(required=True)
    request_headers = fields.Dict(
        required=True, metadata={"description": "As sent, with the values of the "
                                               "signatures and of the custom headers "
                                               f"redacted ({MASK!r})"})
    response_status = fields.Integer(required=True, allow_none=True)
    response_headers = fields.Dict(required=True, allow_none=True)
    response_body = fields.String(required=True, allow_none=True,
                                  metadata={"description": "The first 4 KiB"})
    error = fields.Nested(AttemptErrorSchema, required=True, allow_none=True,
                          metadata={"description": "Set when no response arrived"})
    bulk_retry_id = fields.String(required=True, allow_none=True, metadata={
        "description": "The bulk retry job whose manual re-send this was"})


class DeliverySchema(Schema):
    id = fields.String(required=True)
    event_id = fields.String(attribute="event.event_id", required=True)
    subscription_id = fields.String(required=True)
    event_type = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempt_count = fields.Integer(required=True)
    next_retry_at = fields.DateTime(required=True, allow_none=True)
    last_response_status = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    completed_at = fields.DateTime(required=True, allow_none=True)


class DeliveryDetailSchema(DeliverySchema):
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)


# Subscription health and recovery (docs/HEALTH.md)

class ReplaySchema(Schema):
    since = UtcDateTime(metadata={
        "description": "Default: when the subscription was last disabled or paused"})


class RecoverSchema(Schema):
    since = UtcDateTime(required=True)
    until = UtcDateTime(metadata={"description": "Default: now. A window longer than 14 days "
                                                 "is cut to its last 14 days (since moves)"})


class ResentSchema(Schema):
    count = fields.Integer(required=True)
    delivery_ids = fields.List(fields.String(), required=True,
                               metadata={"description": "Queued oldest first"})


class PingSchema(Schema):
    delivery_id = fields.String(required=True)
    event_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempt = fields.Nested(AttemptSchema, required=True, allow_none=True, metadata={
        "description": "null when no worker made the attempt within the timeout"})


class StatsQuerySchema(Schema):
    since = UtcDateTime(metadata={"description": "Default: 24 hours before until"})
    until = UtcDateTime(metadata={"description": "Default: now"})
    bucket = fields.String(load_default="hour",
                           validate=validate.OneOf(("minute", "hour", "day")))


class LatencySchema(Schema):
    p50 = fields.Float(required=True, allow_none=True)
    p90 = fields.Float(required=True, allow_none=True)
    p99 = fields.Float(required=True, allow_none=True)


class OutcomesSchema(Schema):
    success = fields.Integer(required=True)
    failure = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    success_rate = fields.Float(required=True, allow_none=True)
    latency_ms = fields.Nested(LatencySchema, required=True)


class BucketSchema(OutcomesSchema):
    start = fields.DateTime(required=True)


class StatsSchema(Schema):
    since = fields.DateTime(required=True)
    until = fields.DateTime(required=True)
    bucket = fields.String(required=True)
    totals = fields.Nested(OutcomesSchema, required=True)
    series = fields.List(fields.Nested(BucketSchema), required=True)


# Event types

class EventTypeCreateSchema(Schema):
    name = Text(required=True, validate=[validate.Length(max=255), EVENT_TYPE_NAME])
    description = Text(required=True, validate=validate.Length(min=1, max=1000))
    schema = JsonObject(load_default=None, allow_none=True,
                        metadata={"description": "JSON Schema that published data must match"})


class EventTypeSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    schema = fields.Dict(required=True, allow_none=True)
    builtin = fields.Boolean(required=True,
                             metadata={"description": "true for the service's catalogue"})
    created_at = fields.DateTime(required=True, allow_none=True,
                                 metadata={"description": "null for built-in types"})


# Publishing

class PublishSchema(Schema):
    event_type = Text(required=True, validate=[validate.Length(min=1, max=255),
                                               EVENT_TYPE_NAME])
    data = JsonObject(required=True)
    metadata = JsonObject(load_default=None, allow_none=True)


class IdempotencyHeadersSchema(Schema):
    """The header of the operations a client may repeat safely (publish, bulk retry)."""

    idempotency_key = fields.String(
        data_key="Idempotency-Key", validate=validate.Regexp(EVENT_ID_PATTERN),
        metadata={"description": "A repeat with the same key creates nothing new"},
    )


class PublishResultSchema(Schema):
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    created = fields.Boolean(required=True,
                             metadata={"description": "false when the id was seen before"})


# Operations

class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class DependencySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["up", "down"]))
    error = fields.String(metadata={"description": "The error class, when down"})


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ready", "unavailable"]))
    dependencies = fields.Dict(keys=fields.String(), values=fields.Nested(DependencySchema),
                               required=True,
                               metadata={"description": "database and broker"})
    warnings = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                           metadata={"description": "What needs an operator though this "
                                     "process is ready, by what it is about: `sweep` when "
                                     "no sweep finished for 3 sweep intervals (is beat "
                                     "running?); empty when none"})


SubscriptionPageSchema = _page_of(SubscriptionSchema, "SubscriptionPageSchema")
DeliveryPageSchema = _page_of(DeliverySchema, "DeliveryPageSchema")
EventTypePageSchema = _page_of(EventTypeSchema, "EventTypePageSchema")
