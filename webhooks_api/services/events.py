"""Events: validation against the catalogue and JSON Schemas, and storage, idempotent per
tenant and event id. The body is serialized here once; every attempt sends these bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.domain.catalogue import BUILTIN_EVENT_TYPES, EVENT_TYPE_PATTERN
from webhooks_api.domain.ids import EVENT_ID_PATTERN, new_id
from webhooks_api.domain.json_values import json_value_error
from webhooks_api.domain.models import Event, EventType
from webhooks_api.errors import InvalidInputError, NotFoundError, PayloadTooLargeError


@dataclass(frozen=True)
class CustomType:
    """A tenant's registered type as validation needs it. Registered rows are never changed
    in place, so `pk` names this schema for good: a publish can check that the row it was
    validated against still exists."""

    pk: int
    validator: Validator | None  # compiled once; the schema was checked when registered


def custom_type(session: Session, tenant_id: str, name: str) -> CustomType | None:
    """The registered type, read afresh (None when the tenant has no such type)."""
    row = session.execute(
        select(EventType.id, EventType.schema)
        .where(EventType.tenant_id == tenant_id, EventType.name == name)
    ).one_or_none()
    if row is None:
        return None
    validator = (None if row.schema is None else
                 validator_for(row.schema, default=Draft202012Validator)(row.schema))
    return CustomType(pk=row.id, validator=validator)


TypeLookup = Callable[[Session, str, str], CustomType | None]


def validate_event(session: Session, tenant_id: str, event_type: str, data, metadata,
                   event_id: str | None, lookup: TypeLookup = custom_type
                   ) -> CustomType | None:
    """Raise InvalidInputError naming the field unless the event may be published; returns
    the custom type it was validated against (None for a built-in type)."""
    if not isinstance(tenant_id, str) or not EVENT_ID_PATTERN.match(tenant_id):
        raise InvalidInputError("invalid tenant id", {"tenant_id": ["1-128 of A-Za-z0-9_-"]})
    if event_id is not None and (
        not isinstance(event_id, str) or not EVENT_ID_PATTERN.match(event_id)
    ):
        raise InvalidInputError("invalid event id",
                                {"event_id": ["must match [A-Za-z0-9_-]{1,128}"]})
    if not isinstance(data, dict):
        raise InvalidInputError("event data must be a JSON object",
                                {"data": ["must be a JSON object"]})
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a JSON object",
                                {"metadata": ["must be a JSON object"]})
    for field, value in (("data", data), ("metadata", metadata)):
        if error := json_value_error(value):
            raise InvalidInputError(f"{field} cannot be stored", {field: [error]})
    if not isinstance(event_type, str):
        raise InvalidInputError("unknown event type", {"event_type": ["must be a string"]})
    if event_type in BUILTIN_EVENT_TYPES:
        return None
    custom = (lookup(session, tenant_id, event_type)
              if EVENT_TYPE_PATTERN.match(event_type) else None)
    if custom is None:
        raise InvalidInputError(f"unknown event type {event_type!r}",
                                {"event_type": [f"unknown event type {event_type!r}"]})
    if custom.validator is not None:
        try:
            mismatch = best_match(custom.validator.iter_errors(data))  # as jsonschema.validate
        except Unresolvable as error:  # registration refuses these; a stored one says so
            raise InvalidInputError(
                f"the schema of {event_type} has a reference that points nowhere",
                {"event_type": [f"unresolvable reference in its schema: {error}"]},
            ) from None
        if mismatch is not None:
            where = "/".join(str(p) for p in mismatch.absolute_path) or "(root)"
            raise InvalidInputError(
                f"data does not match the schema of {event_type}",
                {"data": [f"{where}: {mismatch.message}"]},
            )
    return custom


def serialize_body(event_id: str, event_type: str, occurred_at: datetime, tenant_id: str,
                   data: dict, metadata: dict | None) -> str:
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "timestamp": occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant_id": tenant_id,
            "data": data,
            "metadata": metadata or {},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class NewEvent:
    """A valid event, serialized, not yet stored: what every way of inserting it needs."""

    event_id: str
    tenant_id: str
    event_type: str
    data: dict
    body: str
    occurred_at: datetime
    custom_type_pk: int | None  # the registered type it was validated against


def new_event(session: Session, settings: Settings, tenant_id: str, event_type: str,
              data, metadata=None, event_id: str | None = None,
              lookup: TypeLookup = custom_type) -> NewEvent:
    """Validate and serialize (an id is made when none is given); raises DomainError."""
    custom = validate_event(session, tenant_id, event_type, data, metadata, event_id, lookup)
    event_id = event_id or new_id("evt")
    occurred_at = datetime.now(UTC).replace(microsecond=0)
    body = serialize_body(event_id, event_type, occurred_at, tenant_id, data, metadata)
    if len(body.encode("utf-8")) > settings.max_payload_bytes:
        raise PayloadTooLargeError(
            f"event body exceeds WEBHOOKS_MAX_PAYLOAD_BYTES ({settings.max_payload_bytes})",
            {"data": ["too large"]},
        )
    return NewEvent(event_id=event_id, tenant_id=tenant_id, event_type=event_type, data=data,
                    body=body, occurred_at=occurred_at,
                    custom_type_pk=custom.pk if custom else None)


@dataclass(frozen=True)
class StoredEvent:
    event: Event
    created: bool


def store_event(session: Session, settings: Settings, tenant_id: str, event_type: str,
                data, metadata=None, event_id: str | None = None) -> StoredEvent:
    """Validate and insert the event in the session's transaction; a repeat id returns the
    stored event unchanged. The caller commits."""
    new = new_event(session, settings, tenant_id, event_type, data, metadata, event_id)
    # RETURNING the whole row: a new event needs no second read; only a repeat id does.
    event = session.scalars(
        insert(Event)
        .values(event_id=new.event_id, tenant_id=tenant_id, event_type=event_type,
                body=new.body, occurred_at=new.occurred_at)
        .on_conflict_do_nothing(constraint="uq_events_tenant_event_id")
        .returning(Event)
    ).one_or_none()
    if event is not None:
        return StoredEvent(event=event, created=True)
    return StoredEvent(event=get_event(session, tenant_id, new.event_id), created=False)


def get_event(session: Session, tenant_id: str, event_id: str) -> Event:
    event = session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
    )
    if event is None:
        raise NotFoundError(f"event {event_id} not found")
    return event
