"""`search`: a payload lookup among 100,000 stored deliveries, through the Procfile's web line.

One tenant gets 100,000 deliveries of as many invoices (the workload's ~1 KB bodies,
serialized as the publish path does, each with its own `data.invoice_id`), another tenant
10,000 with the same invoice ids, so the index finds both tenants' events and the tenant
predicate must keep one. Rows are inserted by SQL (setup, not measured), then ANALYZEd, as
autovacuum does after such a load; the GIN index's pending list is left as the inserts
leave it (flushed at 4 MB), so lookups pay for scanning it as they would before a vacuum.
Then 200 sequential `GET /deliveries?data.invoice_id=...` (after 20 warm-up) with one
`requests.Session`, each of an invoice drawn at random, each answer checked: exactly that
delivery. `details.search.plan` is EXPLAIN ANALYZE of the statement the service runs for
one lookup, to see that PostgreSQL used `ix_events_body_path`.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import requests
from sqlalchemy import event, text

from bench import stack
from bench.report import latency_summary
from bench.workload import EVENT_TYPE, event_data
from webhooks_api.domain.payload_search import payload_match
from webhooks_api.services.deliveries import list_deliveries
from webhooks_api.services.events import serialize_body
from webhooks_api.services.tenants import create_api_key

DELIVERIES = 100_000
OTHER_TENANT_DELIVERIES = 10_000
LOOKUPS = 200
WARMUP = 20
BATCH = 5_000
INDEX = "ix_events_body_path"

# Events and their deliveries in one statement per batch; created one second apart, newest
# first in the order of `seq`, so lists are ordered as a day of traffic would be.
_INSERT = text("""
    WITH stored AS (
        INSERT INTO events (event_id, tenant_id, event_type, body, occurred_at, created_at,
                            fanned_out_at)
        SELECT event_id, :tenant_id, :event_type, body, now(),
               now() - make_interval(secs => seq), now()
        FROM unnest(CAST(:event_ids AS text[]), CAST(:bodies AS text[]),
                    CAST(:seqs AS int[])) AS e(event_id, body, seq)
        RETURNING id, event_id, created_at)
    INSERT INTO deliveries (id, event_pk, subscription_id, tenant_id, event_type, status,
                            attempt_count, last_response_status, created_at, completed_at)
    SELECT 'dlv_' || substr(md5(:tenant_id || event_id), 1, 24), id, :subscription_id,
           :tenant_id, :event_type, 'success', 1, 200, created_at, created_at
    FROM stored
""")


def _event_id(seq: int) -> str:
    return f"evt_search_{seq:08d}"


def _invoice_id(seq: int) -> str:
    return event_data(seq)["invoice_id"]


def store(session, tenant_id: str, subscription_id: str, count: int) -> None:
    occurred_at = datetime.now(UTC)
    for start in range(0, count, BATCH):
        seqs = list(range(start, min(start + BATCH, count)))
        session.execute(_INSERT, {
            "tenant_id": tenant_id, "subscription_id": subscription_id,
            "event_type": EVENT_TYPE, "seqs": seqs,
            "event_ids": [_event_id(seq) for seq in seqs],
            "bodies": [serialize_body(_event_id(seq), EVENT_TYPE, occurred_at, tenant_id,
                                      event_data(seq), None) for seq in seqs]})
        session.commit()


def plan(session, tenant_id: str, invoice_id: str) -> list[str]:
    """EXPLAIN ANALYZE of the page query the service runs for one payload lookup."""
    engine = session.get_bind()
    captured = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        list_deliveries(session, tenant_id,
                        payload=[payload_match("data.invoice_id", invoice_id)])
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    rows = session.connection().exec_driver_sql(
        f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars().all()
    session.rollback()
    return rows


def search(bench) -> None:
    setup_started = time.monotonic()
    tenant = bench.tenant("search", [bench.receiver.url("search")])
    other = bench.tenant("searchother", [bench.receiver.url("search")])
    store(bench.session, tenant.id, tenant.subscription_ids[0], DELIVERIES)
    store(bench.session, other.id, other.subscription_ids[0], OTHER_TENANT_DELIVERIES)
    bench.session.execute(text("ANALYZE events; ANALYZE deliveries"))
    bench.session.commit()
    setup_seconds = time.monotonic() - setup_started

    key = create_api_key(bench.session, tenant.id).api_key
    seqs = random.Random(7).sample(range(DELIVERIES), WARMUP + LOOKUPS)
    web, base_url = stack.start_web(bench.env)
    client = requests.Session()
    latencies, failures = [], 0
    try:
        for index, seq in enumerate(seqs):
            started = time.perf_counter()
            response = client.get(f"{base_url}/api/v1/webhooks/deliveries",
                                  params={"data.invoice_id": _invoice_id(seq)},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
            took = time.perf_counter() - started
            items = response.json().get("items") if response.ok else None
            failures += not items or [item["event_id"] for item in items] != [_event_id(seq)]
            if index >= WARMUP:
                latencies.append(took)
    finally:
        client.close()
        web.stop()
    explained = plan(bench.session, tenant.id, _invoice_id(seqs[0]))
    summary = latency_summary(latencies)
    bench.figures["search_payload_p50_ms"] = summary["p50_ms"]
    bench.figures["search_payload_p99_ms"] = summary["p99_ms"]
    bench.details["search"] = {
        "command": web.expanded, "deliveries": DELIVERIES,
        "other_tenant_deliveries": OTHER_TENANT_DELIVERIES, "failures": failures,
        "setup_seconds": round(setup_seconds, 1), "uses_index": any(
            INDEX in line for line in explained), "plan": explained, **summary}
