"""Tenants' own event types: a name, a description and an optional JSON Schema that every
published event of that type must match (DESIGN.md "Event types")."""

from __future__ import annotations

import jsonschema
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ..catalogue import BUILTIN_EVENT_TYPES, EVENT_TYPE_PATTERN, is_operational
from ..errors import ConflictError, InvalidInputError
from ..ids import EVENT_ID_PATTERN
from ..models import EventType

MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000


def event_type_errors(tenant_id, name, description, schema) -> dict[str, list[str]]:
    """Messages per field; empty when the type may be registered."""
    errors: dict[str, list[str]] = {}
    if not isinstance(tenant_id, str) or not EVENT_ID_PATTERN.match(tenant_id):
        errors["tenant_id"] = ["1-128 characters of A-Z a-z 0-9 _ -"]
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH \
            or not EVENT_TYPE_PATTERN.match(name):
        errors["name"] = ["lower-case dotted name such as 'acme.order.shipped'"]
    elif name in BUILTIN_EVENT_TYPES or is_operational(name):
        errors["name"] = [f"{name!r} is a built-in or reserved event type"]
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH
    ):
        errors["description"] = [f"a string of at most {MAX_DESCRIPTION_LENGTH} characters"]
    if schema is not None:
        if not isinstance(schema, dict):
            errors["schema"] = ["a JSON Schema object"]
        else:
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as error:
                errors["schema"] = [f"not a valid JSON Schema: {error.message}"]
    return errors


def register_event_type(session: Session, tenant_id: str, name: str,
                        description: str | None = None, schema: dict | None = None
                        ) -> EventType:
    """Register a tenant's type; one unit of work (commits)."""
    if errors := event_type_errors(tenant_id, name, description, schema):
        raise InvalidInputError("the event type is not valid", errors)
    inserted = session.scalar(
        insert(EventType)
        .values(tenant_id=tenant_id, name=name, description=description, schema=schema)
        .on_conflict_do_nothing(constraint="uq_event_types_tenant_name")
        .returning(EventType)
    )
    if inserted is None:
        session.rollback()
        raise ConflictError(f"event type {name} is already registered for tenant {tenant_id}")
    session.commit()
    return inserted
