"""Tenant isolation of publishing: an event of tenant A reaches A's subscriptions only,
whether published over the API, with publish.delay() or in-process with the event bus;
event ids are per tenant, so A cannot collide with (or replay) B's events. (The
route-by-route 404 matrix is tests/api/test_api_auth.py's.)"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from tests.support.helpers import wait_for
from webhooks_api.domain.models import Delivery, Event
from webhooks_api.services.bus import get_event_bus
from webhooks_worker.tasks import publish

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"


def _other_tenant(runner) -> dict:
    tenant_id = f"tenant_{uuid.uuid4().hex[:8]}"
    assert runner.invoke(args=["tenants", "create", tenant_id]).exit_code == 0
    result = runner.invoke(args=["api-keys", "create", tenant_id])
    api_key = result.output.strip().splitlines()[-1]
    return {"id": tenant_id, "headers": {"Authorization": f"Bearer {api_key}"}}


def test_publishing_as_one_tenant_never_reaches_another(app, client, runner, tenant,
                                                         receiver, worker, session):
    tenant_a, tenant_b = tenant, _other_tenant(runner)
    for owner in (tenant_a, tenant_b):
        created = client.post(SUBSCRIPTIONS, headers=owner["headers"], json={
            "url": f"{receiver.url}?tenant={owner['id']}", "event_types": ["*"]})
        assert created.status_code == 201, created.json

    # B publishes first with an id that A then reuses: ids are scoped per tenant.
    sent = [
        client.post("/api/v1/webhooks/publish", headers={**tenant_b["headers"],
                    "Idempotency-Key": "evt_shared"},
                    json={"event_type": "invoice.created", "data": {"owner": "b"}}),
        client.post("/api/v1/webhooks/publish", headers={**tenant_a["headers"],
                    "Idempotency-Key": "evt_shared"},
                    json={"event_type": "invoice.created", "data": {"owner": "a"}}),
    ]
    assert [r.status_code for r in sent] == [202, 202]
    assert [r.json["created"] for r in sent] == [True, True]
    with app.app_context():
        publish.delay("invoice.paid", {"owner": "a"}, tenant_a["id"], event_id="evt_a_delay")
        get_event_bus().publish("invoice.voided", {"owner": "b"}, tenant_b["id"],
                                event_id="evt_b_bus")

    def settled():
        """All four events fanned out (a leak would be a delivery row by then) and every
        delivery made."""
        session.expire_all()
        events = session.scalars(select(Event)).all()
        deliveries = session.scalars(select(Delivery)).all()
        return (len(events) == 4 and all(e.fanned_out_at for e in events)
                and all(d.status == "success" for d in deliveries)
                and len(receiver.requests) == len(deliveries))

    wait_for(settled, timeout=30, message="every event fanned out and delivered")
    assert len(receiver.requests) == 4

    def delivered_to(owner) -> list[tuple[str, str]]:
        return sorted(
            (json.loads(r.body)["id"], json.loads(r.body)["data"]["owner"])
            for r in receiver.requests if r.path.endswith(f"tenant={owner['id']}")
        )

    assert delivered_to(tenant_a) == [("evt_a_delay", "a"), ("evt_shared", "a")]
    assert delivered_to(tenant_b) == [("evt_b_bus", "b"), ("evt_shared", "b")]
    for request in receiver.requests:
        owner_id = request.path.rsplit("=", 1)[1]
        assert json.loads(request.body)["tenant_id"] == owner_id

    session.expire_all()
    assert all(d.tenant_id == d.event.tenant_id for d in session.scalars(select(Delivery)))
    events = session.scalars(select(Event).where(Event.event_id == "evt_shared")).all()
    assert sorted(e.tenant_id for e in events) == sorted([tenant_a["id"], tenant_b["id"]])
