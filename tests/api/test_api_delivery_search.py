"""The delivery search: payload filters (`data.<path>`, `metadata.<path>`) as JSON
containment on the stored event body, the last attempt's response status, the event id;
together, with the other filters, and never across tenants. (The search through a real
delivery's stored status: test_api_deliveries.py's manual re-send that fails.)"""

from __future__ import annotations

import pytest
from sqlalchemy import update
from werkzeug.datastructures import MultiDict

from tests.support.api_support import API, assert_error, create_subscription, seed_deliveries
from webhooks_api.domain.models import Delivery

INVOICES = [
    {"invoice_id": "inv_42", "amount": 100, "paid": True,
     "customer": {"id": "cus_1", "tier": "gold"}},
    {"invoice_id": "inv_43", "amount": "100", "paid": "true", "customer": {"id": "cus_2"}},
    {"invoice_id": "inv_44", "amount": 100.5, "note": None, "tags": ["vip"],
     "customer": {"id": "cus_1"}},
]


def searcher(client, tenant, path: str = f"{API}/deliveries"):
    def ids(query) -> set[str]:
        response = client.get(path, query_string=query, headers=tenant["headers"])
        assert response.status_code == 200, response.json
        return {delivery["id"] for delivery in response.json["items"]}
    return ids


def test_payload_filters_match_nested_values_typed_as_written(client, tenant, other_tenant,
                                                             session):
    ours = create_subscription(client, tenant, event_types=["*"])
    first, second, third = seed_deliveries(
        session, tenant["id"], ours["id"], data=INVOICES,
        metadata=[{"source": "billing"}, None, {"source": "import"}])
    theirs = create_subscription(client, other_tenant, event_types=["*"])
    (their_first,) = seed_deliveries(session, other_tenant["id"], theirs["id"],
                                     data=INVOICES[:1], metadata=[{"source": "billing"}])
    ids = searcher(client, tenant)

    assert ids({"data.invoice_id": "inv_42"}) == {first}
    assert ids({"data.customer.id": "cus_1"}) == {first, third}
    assert ids({"data.customer.id": "cus_1", "data.customer.tier": "gold"}) == {first}
    assert ids(MultiDict([("data.customer.id", "cus_1"), ("data.customer.id", "cus_2")])) == set()
    assert ids({"metadata.source": "billing"}) == {first}
    # A number, true, false or null as written matches that JSON value and the string.
    assert ids({"data.amount": "100"}) == {first, second}
    assert ids({"data.amount": "1e2"}) == {first}  # 100 as a number; no "1e2" string
    assert ids({"data.amount": "100.5"}) == {third}
    assert ids({"data.paid": "true"}) == {first, second}
    assert ids({"data.note": "null"}) == {third}
    # Exact values at the end of the path, not inside arrays or objects, case-sensitive.
    assert ids({"data.invoice_id": "INV_42"}) == set()
    assert ids({"data.customer": "cus_1"}) == set()
    assert ids({"data.tags": "vip"}) == set()
    assert ids({"data.invoice_id": "inv_4"}) == set()
    # With the other filters, and on one subscription's list.
    assert ids({"data.customer.id": "cus_1", "status": "failed"}) == {first, third}
    assert ids({"data.customer.id": "cus_1", "status": "success"}) == set()
    assert searcher(client, tenant, f"{API}/subscriptions/{ours['id']}/deliveries")(
        {"data.invoice_id": "inv_42"}) == {first}
    # The other tenant's event with the same body is its own.
    assert searcher(client, other_tenant)({"data.invoice_id": "inv_42",
                                           "metadata.source": "billing"}) == {their_first}


def test_response_status_code_or_class_and_event_id(client, tenant, other_tenant, session):
    subscription = create_subscription(client, tenant, event_types=["*"])
    unavailable, failing, delivered, no_response = seed_deliveries(
        session, tenant["id"], subscription["id"], data=INVOICES + [{"invoice_id": "inv_45"}])
    for delivery_id, response_status in ((unavailable, 503), (failing, 500),
                                         (delivered, 200)):
        session.execute(update(Delivery).where(Delivery.id == delivery_id)
                        .values(last_response_status=response_status))
    session.commit()
    theirs = create_subscription(client, other_tenant, event_types=["*"])
    (their_delivery,) = seed_deliveries(session, other_tenant["id"], theirs["id"])
    session.execute(update(Delivery).where(Delivery.id == their_delivery)
                    .values(last_response_status=503))
    session.commit()
    ids = searcher(client, tenant)

    assert ids({"response_status": "503"}) == {unavailable}
    assert ids({"response_status": "5xx"}) == {unavailable, failing}
    assert ids({"response_status": "2xx"}) == {delivered}
    assert ids({"response_status": "4xx"}) == ids({"response_status": "501"}) == set()
    assert no_response not in ids({"response_status": "1xx"}) | ids({"response_status": "5xx"})

    def event_of(delivery_id: str, who=tenant) -> str:
        return client.get(f"{API}/deliveries/{delivery_id}",
                          headers=who["headers"]).json["event_id"]

    assert ids({"event_id": event_of(failing)}) == {failing}
    assert ids({"event_id": event_of(failing), "response_status": "5xx",
                "data.customer.id": "cus_2"}) == {failing}
    assert ids({"event_id": event_of(failing), "response_status": "2xx"}) == set()
    assert ids({"event_id": event_of(failing), "data.invoice_id": "inv_42"}) == set()
    assert ids({"event_id": event_of(their_delivery, other_tenant)}) == set()


@pytest.mark.parametrize("query, field", [
    ({"response_status": "600"}, "response_status"),
    ({"response_status": "099"}, "response_status"),
    ({"response_status": "5XX"}, "response_status"),
    ({"response_status": "5x"}, "response_status"),
    ({"response_status": "500\n"}, "response_status"),
    ({"event_id": "evt 1"}, "event_id"),
    ({"data.": "inv_42"}, "data."),
    ({"data..id": "inv_42"}, "data..id"),
    ({"metadata.source": "a\x00b"}, "metadata.source"),
    ({"data.note": "y" * 1025}, "data.note"),
    ({".".join(["data"] * 40): "x"}, ".".join(["data"] * 40)),
    ({f"data.k{n}": "v" for n in range(11)}, "data.k10"),
    ({"datax": "1"}, "datax"),  # not a payload filter: an unknown parameter
    ({"payload": "x"}, "payload"),
])
def test_bad_search_parameters_answer_422_naming_them(client, tenant, query, field):
    response = client.get(f"{API}/deliveries", query_string=query, headers=tenant["headers"])
    assert_error(response, 422, field)


def test_search_parameters_are_documented(client):
    operation = client.get("/openapi.json").json["paths"][f"{API}/deliveries"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["response_status"]["schema"]["pattern"] == "^[1-5](?:[0-9]{2}|xx)$"
    assert "event_id" in parameters
    assert "data.<path>" in operation["description"]
    assert "metadata.<path>" in operation["description"]
