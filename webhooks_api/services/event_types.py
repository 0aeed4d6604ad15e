"""Event types a tenant can publish: the built-in catalogue plus the tenant's own.

A custom type may carry a JSON Schema that published data must match. The schema is
checked when it is registered, and it may only reference its own parts (`#...`): a remote
`$ref` would make every publish fetch a URL of the tenant's choosing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jsonschema
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from webhooks_api.domain.catalogue import BUILTIN_EVENT_TYPES, EVENT_TYPE_PATTERN, is_operational
from webhooks_api.domain.json_values import json_size
from webhooks_api.domain.models import EventType
from webhooks_api.errors import ConflictError, InvalidInputError, NotFoundError
from webhooks_api.services.pagination import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor

SCHEMA_MAX_BYTES = 65536
MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_ROOT_URI = "urn:webhooks:event-type-schema"


@dataclass(frozen=True)
class EventTypeView:
    name: str
    description: str | None
    schema: dict | None
    builtin: bool
    created_at: datetime | None = None


def _builtin(name: str) -> EventTypeView:
    return EventTypeView(name=name, description=BUILTIN_EVENT_TYPES[name].description,
                         schema=None, builtin=True)


def _custom(row: EventType) -> EventTypeView:
    return EventTypeView(name=row.name, description=row.description, schema=row.schema,
                         builtin=False, created_at=row.created_at)


def _name_key(key: list) -> tuple[str]:
    (name,) = key
    if not EVENT_TYPE_PATTERN.match(name):
        raise ValueError("not an event type name")
    return (name,)


def list_event_types(session: Session, tenant_id: str, *, limit: int = DEFAULT_LIMIT,
                     cursor: str | None = None) -> Page:
    """Built-in and custom types together, by name (a catalogue reads best sorted)."""
    after = decode_cursor(cursor, _name_key)[0] if cursor else ""
    builtins = [_builtin(name) for name in BUILTIN_EVENT_TYPES if name > after]
    customs = [_custom(row) for row in session.scalars(
        select(EventType).where(EventType.tenant_id == tenant_id, EventType.name > after)
        .order_by(EventType.name).limit(limit + 1)
    )]
    merged = sorted(builtins + customs, key=lambda view: view.name)[:limit + 1]
    if len(merged) <= limit:
        return Page(items=merged, next_cursor=None)
    return Page(items=merged[:limit], next_cursor=encode_cursor([merged[limit - 1].name]))


def get_event_type(session: Session, tenant_id: str, name: str) -> EventTypeView:
    if name in BUILTIN_EVENT_TYPES:
        return _builtin(name)
    row = None
    if EVENT_TYPE_PATTERN.match(name):
        row = session.scalar(
            select(EventType).where(EventType.tenant_id == tenant_id, EventType.name == name))
    if row is None:
        raise NotFoundError(f"event type {name} not found")
    return _custom(row)


def _references(schema: dict) -> list[str]:
    found, stack = [], [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.extend(value for key, value in node.items()
                         if key in _REFERENCE_KEYWORDS and isinstance(value, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def json_schema_errors(schema: dict) -> list[str]:
    """Messages a person can act on; empty when `schema` may validate published data."""
    if json_size(schema) > SCHEMA_MAX_BYTES:
        return [f"must be at most {SCHEMA_MAX_BYTES} bytes as JSON"]
    if not isinstance(schema.get("$schema", ""), str):
        return ["$schema must be the URI of a JSON Schema dialect"]
    validator = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return [f"not a valid JSON Schema at {where}: {error.message}"]
    references = _references(schema)
    if remote := [ref for ref in references if not ref.startswith("#")]:
        return [f"only references within the schema ('#/...') are allowed, not {remote[0]!r}"]
    dialect = specification_with(schema.get("$schema", ""), default=DRAFT202012)
    resource = dialect.create_resource(schema)
    resolver = Registry().with_resource(_ROOT_URI, resource).resolver(_ROOT_URI)
    for reference in references:
        try:
            resolver.lookup(reference)
        except Unresolvable:
            return [f"the reference {reference!r} points nowhere in the schema"]
    return []


def register_event_type(session: Session, tenant_id: str, *, name: str,
                        description: str | None = None, schema: dict | None = None
                        ) -> EventTypeView:
    """Register a tenant's type (the API and the EventBus); one unit of work (commits)."""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH \
            or not EVENT_TYPE_PATTERN.match(name):
        raise InvalidInputError("invalid event type name", {
            "name": ["a lower-case dotted name such as 'acme.order.shipped'"]})
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH
    ):
        raise InvalidInputError("invalid description", {
            "description": [f"a string of at most {MAX_DESCRIPTION_LENGTH} characters"]})
    if schema is not None and not isinstance(schema, dict):
        raise InvalidInputError("the JSON Schema is not valid",
                                {"schema": ["a JSON Schema object"]})
    if is_operational(name):
        raise InvalidInputError("the webhook.* types are reserved", {
            "name": ["the 'webhook' category is reserved for the service's own events"]})
    if name in BUILTIN_EVENT_TYPES:
        raise ConflictError(f"event type {name} already exists in the built-in catalogue")
    if schema is not None and (errors := json_schema_errors(schema)):
        raise InvalidInputError("the JSON Schema is not valid", {"schema": errors})
    row = session.scalar(
        insert(EventType)
        .values(tenant_id=tenant_id, name=name, description=description, schema=schema)
        .on_conflict_do_nothing(constraint="uq_event_types_tenant_name")
        .returning(EventType)
    )
    if row is None:
        session.rollback()
        raise ConflictError(f"event type {name} is already registered")
    session.commit()
    return _custom(row)
