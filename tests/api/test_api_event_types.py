"""Event types: the catalogue plus a tenant's own types, and registering one."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.support.api_support import API, assert_error
from webhooks_api.domain.catalogue import BUILTIN_EVENT_TYPES, is_operational
from webhooks_api.domain.json_values import json_size
from webhooks_api.domain.models import EventType
from webhooks_api.services.events import validate_event

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string"}, "lines": {"$ref": "#/$defs/lines"}},
    "$defs": {"lines": {"type": "array", "items": {"type": "integer"}}},
}


def register(client, tenant, **fields):
    body = {"name": "acme.order.shipped", "description": "An order shipped.", **fields}
    return client.post(f"{API}/events", headers=tenant["headers"], json=body)


def all_pages(client, tenant, limit=20) -> list[dict]:
    items, cursor = [], None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/events", query_string=query, headers=tenant["headers"]).json
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_catalogue_lists_builtin_and_own_types_by_name(client, tenant, other_tenant):
    assert register(client, tenant, schema=ORDER_SCHEMA).status_code == 201
    assert register(client, other_tenant, name="zeta.thing.done").status_code == 201
    items = all_pages(client, tenant, limit=7)
    names = [item["name"] for item in items]
    assert names == sorted([*BUILTIN_EVENT_TYPES, "acme.order.shipped"])
    by_name = {item["name"]: item for item in items}
    assert by_name["invoice.created"] == {
        "name": "invoice.created", "schema": None, "builtin": True, "created_at": None,
        "description": BUILTIN_EVENT_TYPES["invoice.created"].description}
    custom = by_name["acme.order.shipped"]
    assert custom["builtin"] is False and custom["schema"] == ORDER_SCHEMA
    assert custom["created_at"]
    assert "zeta.thing.done" not in by_name, "another tenant's type is not listed"


def test_the_catalogue_has_fifty_standard_types_each_with_an_example_it_accepts(
        client, tenant, session):
    """The seed promised 50+ standard events: the served catalogue holds them besides the
    operational ones, and every example in docs/EVENTS.md is data its type accepts (built-in
    types enforce no schema, so nothing a publisher sends today is refused)."""
    served = all_pages(client, tenant, limit=100)
    standard = [item for item in served if not is_operational(item["name"])]
    assert len(standard) >= 50, [item["name"] for item in standard]
    assert all(item["description"] and item["schema"] is None for item in served)
    for name, entry in BUILTIN_EVENT_TYPES.items():
        assert isinstance(entry.example, dict) and entry.example, name
        assert json_size(entry.example) < 1024, name
        assert validate_event(session, tenant["id"], name, entry.example, None, None) is None
    assert {"credit_note", "payment_method", "api_key", "tenant"} <= {
        name.split(".")[0] for name in BUILTIN_EVENT_TYPES}
    assert "report.scheduled" in BUILTIN_EVENT_TYPES


def test_get_one_builtin_or_custom_type(client, tenant, other_tenant):
    register(client, tenant)
    builtin = client.get(f"{API}/events/webhook.test", headers=tenant["headers"])
    assert builtin.status_code == 200 and builtin.json["builtin"] is True
    custom = client.get(f"{API}/events/acme.order.shipped", headers=tenant["headers"])
    assert custom.status_code == 200 and custom.json["description"] == "An order shipped."
    for name in ("no.such_type", "NOT A TYPE", "%00", "acme.order.shipped"):
        headers = other_tenant["headers"] if name == "acme.order.shipped" else tenant["headers"]
        assert_error(client.get(f"{API}/events/{name}", headers=headers), 404)


def test_register_a_type_then_subscribe_and_publish_against_its_schema(client, tenant,
                                                                       session):
    response = register(client, tenant, schema=ORDER_SCHEMA)
    assert response.status_code == 201
    assert response.json["name"] == "acme.order.shipped" and response.json["builtin"] is False
    publish = f"{API}/publish"
    ok = client.post(publish, headers=tenant["headers"], json={
        "event_type": "acme.order.shipped", "data": {"order_id": "o1", "lines": [1, 2]}})
    assert ok.status_code == 202
    mismatch = client.post(publish, headers=tenant["headers"], json={
        "event_type": "acme.order.shipped", "data": {"order_id": 5}})
    body = assert_error(mismatch, 422, "data")
    assert "order_id" in body["errors"]["data"][0]
    bad_ref = client.post(publish, headers=tenant["headers"], json={
        "event_type": "acme.order.shipped", "data": {"order_id": "o", "lines": ["x"]}})
    assert_error(bad_ref, 422, "data")


@pytest.mark.parametrize("fields, field", [
    ({"name": "Acme.Order"}, "name"),
    ({"name": "acme"}, "name"),
    ({"name": "acme.*"}, "name"),
    ({"name": "webhook.custom"}, "name"),
    ({"name": "webhook.subscription.failing"}, "name"),
    ({"name": "a." + "b" * 300}, "name"),
    ({"description": ""}, "description"),
    ({"description": "d" * 1001}, "description"),
    ({"description": None}, "description"),
    ({"schema": {"type": "objectx"}}, "schema"),
    ({"schema": {"pattern": "("}}, "schema"),
    ({"schema": {"$schema": {}}}, "schema"),
    ({"schema": {"properties": {"a": {"$ref": "https://example.com/s.json"}}}}, "schema"),
    ({"schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}}, "schema"),
    ({"schema": ["not", "an", "object"]}, "schema"),
    ({"schema": {"description": "x" * 70000}}, "schema"),
    ({"extra": True}, "extra"),
])
def test_register_refuses_invalid_types(client, tenant, session, fields, field):
    assert_error(register(client, tenant, **fields), 422, field)
    assert session.scalar(select(func.count()).select_from(EventType)) == 0


def test_register_requires_name_and_description(client, tenant):
    body = assert_error(client.post(f"{API}/events", headers=tenant["headers"], json={}), 422)
    assert set(body["errors"]) == {"name", "description"}


def test_duplicates_and_builtin_names_conflict(client, tenant, other_tenant, session):
    assert register(client, tenant).status_code == 201
    assert_error(register(client, tenant, description="again"), 409)
    assert_error(register(client, tenant, name="invoice.created"), 409)
    assert register(client, other_tenant).status_code == 201, "names are per tenant"
    assert session.scalar(select(func.count()).select_from(EventType)) == 2


def test_an_unregistered_type_cannot_be_subscribed_to(client, tenant):
    response = client.post(f"{API}/subscriptions", headers=tenant["headers"], json={
        "url": "http://127.0.0.1:9/", "event_types": ["acme.order.shipped"]})
    assert_error(response, 422, "event_types")
