"""What the benchmark publishes and how it watches progress in PostgreSQL.

Events are ~1 KB invoices published with `publish.delay()`, the path other services use.
Each carries its own event id (so the receiver's arrival of `X-Webhook-Event-Id` maps back to
the moment it was published) and its publish time in `data.published_at`. Every scenario
has a tenant of its own, so its progress is one indexed count over its deliveries.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.stack import wait_until
from webhooks_api.config import Settings
from webhooks_api.domain.payload_filters import filter_errors, to_jsonpath
from webhooks_api.domain.secrets import SecretBox, new_signing_secret
from webhooks_api.services.tenants import create_tenant

EVENT_TYPE = "invoice.created"
INVOICE_LINES = 7  # makes the delivered body about 1 KB


def event_data(seq: int) -> dict:
    return {
        "invoice_id": f"inv_{seq:08d}", "seq": seq, "published_at": time.time(),
        "amount_due": 4200 + seq % 1000, "currency": "eur", "status": "open",
        "customer": {"id": "cus_0001", "email": "billing@example.com", "name": "Example GmbH"},
        "lines": [{"id": f"il_{seq:08d}_{line}", "description": "Pro plan seat (monthly)",
                   "quantity": 1, "unit_amount": 700} for line in range(INVOICE_LINES)],
    }


_INSERT_SUBSCRIPTIONS = text("""
    INSERT INTO subscriptions (id, tenant_id, url, event_types, timeout_seconds,
                               secret_ciphertext, filter, filter_jsonpath)
    SELECT id, :tenant_id, url, ARRAY[:event_filter], :timeout_seconds, :secret_ciphertext,
           CAST(:payload_filter AS jsonb), CAST(:filter_jsonpath AS jsonpath)
    FROM unnest(CAST(:ids AS text[]), CAST(:urls AS text[])) AS s(id, url)
""")


@dataclass
class Tenant:
    """A scenario's tenant, its subscriptions (ids and URLs, in the same order) and the
    events it published (id → time)."""

    id: str
    subscription_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    published: dict[str, float] = field(default_factory=dict)


def make_tenant(session: Session, settings: Settings, name: str, urls: list[str],
                timeout_seconds: int = 30, payload_filter: dict | None = None) -> Tenant:
    """A tenant with one subscription to `invoice.*` per URL, inserted in one statement,
    each with `payload_filter` if given (its jsonpath derived as the API derives it).

    Subscriptions are written directly (not through the API): creating 10,000 of them is
    setup, not what is measured. They share one signing secret, encrypted as the API does.
    """
    if payload_filter is not None and (errors := filter_errors(payload_filter)):
        raise ValueError(f"not a valid filter: {errors}")
    tenant = Tenant(id=f"bench_{name}_{uuid.uuid4().hex[:6]}", urls=list(urls))
    create_tenant(session, tenant.id)
    tenant.subscription_ids = [f"sub_{uuid.uuid4().hex[:24]}" for _ in urls]
    ciphertext = SecretBox(settings.encryption_keys).encrypt(new_signing_secret())
    session.execute(_INSERT_SUBSCRIPTIONS, {
        "tenant_id": tenant.id, "ids": tenant.subscription_ids, "urls": urls,
        "event_filter": "invoice.*", "timeout_seconds": timeout_seconds,
        "secret_ciphertext": ciphertext,
        "payload_filter": None if payload_filter is None else json.dumps(payload_filter),
        "filter_jsonpath": None if payload_filter is None else to_jsonpath(payload_filter),
    })
    session.commit()
    return tenant


def publish_one(publish_task, tenant: Tenant, seq: int) -> None:
    event_id = f"evt_bench_{tenant.id[-6:]}_{seq:07d}"
    tenant.published[event_id] = time.monotonic()
    publish_task.delay(EVENT_TYPE, event_data(seq), tenant.id, event_id=event_id)


def publish_burst(publish_task, tenant: Tenant, count: int) -> None:
    for seq in range(count):
        publish_one(publish_task, tenant, seq)


def publish_paced(publish_task, tenant: Tenant, rate_per_s: float, count: int,
                  first_seq: int = 0) -> float:
    """Publish `count` events at a steady rate (scheduled times, so no drift); returns the
    rate achieved."""
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate_per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publish_one(publish_task, tenant, first_seq + index)
    elapsed = time.monotonic() - start
    return count / elapsed if elapsed > 0 else float("inf")


_PROGRESS = text("""
    SELECT count(*) AS rows,
           count(*) FILTER (WHERE status = 'success') AS succeeded,
           count(*) FILTER (WHERE attempt_count > 0 OR status NOT IN ('pending', 'retrying'))
               AS attempted
    FROM deliveries WHERE tenant_id = :tenant_id
      AND (CAST(:subscription_ids AS text[]) IS NULL
           OR subscription_id = ANY(CAST(:subscription_ids AS text[])))
""")


@dataclass(frozen=True)
class Progress:
    rows: int
    succeeded: int
    attempted: int


def progress(session: Session, tenant: Tenant,
             subscription_ids: list[str] | None = None) -> Progress:
    """The tenant's deliveries, or only those of `subscription_ids` (the healthy ones of a
    scenario with endpoints that hang)."""
    row = session.execute(_PROGRESS, {"tenant_id": tenant.id,
                                      "subscription_ids": subscription_ids}).one()
    session.rollback()  # a fresh snapshot on every poll
    return Progress(row.rows, row.succeeded, row.attempted)


def wait_attempted(session: Session, tenant: Tenant, expected: int, timeout: float,
                   interval: float = 0.1, subscription_ids: list[str] | None = None
                   ) -> Progress:
    """Wait until every one of `expected` deliveries (of `subscription_ids`, else of the
    tenant) has had its first attempt stored."""
    return wait_until(
        lambda: (p := progress(session, tenant, subscription_ids)).attempted >= expected and p,
        timeout, f"{expected} attempted deliveries of {tenant.id}", interval)


_DELIVERY_IDS = text("""
    SELECT id FROM deliveries
    WHERE tenant_id = :tenant_id AND subscription_id = ANY(CAST(:subscription_ids AS text[]))
""")


def delivery_ids(session: Session, tenant: Tenant, subscription_ids: list[str]) -> set[str]:
    """The ids of the tenant's deliveries to these subscriptions."""
    ids = set(session.execute(_DELIVERY_IDS, {"tenant_id": tenant.id,
                                              "subscription_ids": subscription_ids}).scalars())
    session.rollback()
    return ids


def attempts_total(session: Session) -> int:
    count = session.execute(text("SELECT count(*) FROM delivery_attempts")).scalar_one()
    session.rollback()
    return count


def stop_retries(session: Session, tenant: Tenant) -> None:
    """Close a scenario's failed deliveries, so their retry countdowns later claim nothing
    and cannot disturb the scenarios that follow."""
    session.execute(text("""
        UPDATE deliveries SET status = 'failed', next_retry_at = NULL
        WHERE tenant_id = :tenant_id AND status IN ('pending', 'retrying')
    """), {"tenant_id": tenant.id})
    session.commit()
