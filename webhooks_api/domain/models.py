"""The data model: PostgreSQL is the truth for subscriptions, events and every delivery.

Timestamps come from the database clock (`now()`), so API processes and workers on
different machines agree on what is due.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import UserDefinedType

from webhooks_api.extensions import db

SUBSCRIPTION_STATUSES = ("active", "paused", "disabled")
DELIVERY_STATUSES = ("pending", "retrying", "success", "failed", "disabled")
# A delivery in one of these states still expects an attempt.
OPEN_DELIVERY_STATUSES = ("pending", "retrying")
ATTEMPT_TRIGGERS = ("automatic", "manual", "swept")
BULK_RETRY_STATUSES = ("running", "done", "cancelled")
# The delivery states a bulk retry re-sends: those that will never be attempted again.
BULK_RETRY_DELIVERY_STATUSES = ("failed", "disabled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class JsonPath(UserDefinedType):
    """PostgreSQL's `jsonpath`, bound as the text it is: SQLAlchemy's JSONPATH type turns a
    None into the path `{}` (it is meant for `#>` paths), which is no jsonpath at all."""

    cache_ok = True

    def get_col_spec(self, **kwargs) -> str:
        return "JSONPATH"


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()


class ApiKey(db.Model):
    """An API key; only its SHA-256 is stored, the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str | None] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Subscription(db.Model):
    """An endpoint of a tenant and the event filters it receives."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="ck_subscriptions_status"),
        CheckConstraint("timeout_seconds BETWEEN 1 AND 300", name="ck_subscriptions_timeout"),
        CheckConstraint("(filter IS NULL) = (filter_jsonpath IS NULL)",
                        name="ck_subscriptions_filter_compiled"),
        Index("ix_subscriptions_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_subscriptions_event_types", "event_types", postgresql_using="gin"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The payload filter as the tenant wrote it (webhooks_api.domain.payload_filters), and
    # the jsonpath predicate derived from it that the fan-out evaluates; both or neither.
    payload_filter: Mapped[dict | None] = mapped_column("filter", JSONB(none_as_null=True))
    filter_jsonpath: Mapped[str | None] = mapped_column(JsonPath)
    timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="30")
    # Custom headers, name → Fernet ciphertext of the value (webhooks_api.domain.custom_headers).
    header_ciphertexts: Mapped[dict] = mapped_column(JSONB, nullable=False,
                                                     server_default="{}")
    extra_metadata: Mapped[dict] = mapped_column(
        "metadata", JSONB, nullable=False, server_default="{}"
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Fernet ciphertexts (webhooks_api.domain.secrets); the plain secret exists only in memory.
    secret_ciphertext: Mapped[str] = mapped_column(Text, nullable=False)
    previous_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_per_second: Mapped[int | None] = mapped_column(Integer)
    success_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failure_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    consecutive_failures: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0"
    )
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Start of the current unbroken run of failures (None while healthy).
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last health warning published in the current failure streak: None, "failing" or
    # "disabled"; cleared by a success or a re-activation, so each stage fires once.
    health_stage: Mapped[str | None] = mapped_column(String(16))
    # When it last stopped receiving (disabled or paused); kept after re-activation as the
    # default start of a replay.
    last_disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class EventType(db.Model):
    """A tenant's own event type, with an optional JSON Schema for its data."""

    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_event_types_tenant_name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    schema: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()


class Event(db.Model):
    """A published event; `body` holds the bytes sent on every attempt, serialized once."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id", name="uq_events_tenant_event_id"),
        Index("ix_events_tenant_created", "tenant_id", "created_at"),
        Index(
            "ix_events_not_fanned_out",
            "created_at",
            postgresql_where=text("fanned_out_at IS NULL"),
        ),
        # Retention prunes by age in small batches (webhooks_worker.maintenance.retention).
        Index("ix_events_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    event_type: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    fanned_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def event_body_json():
    """The stored body read as jsonb: the expression of the index below, which a query
    must repeat as it is for PostgreSQL to use that index."""
    return cast(Event.body, JSONB)


# The delivery search's payload filters are containment (`@>`) on the body
# (webhooks_api.domain.payload_search); `jsonb_path_ops` indexes each path-to-value, smaller
# and faster for `@>` than the default operator class, which also serves key lookups we do
# not make. The body stays text: the exact bytes sent on every attempt.
Index("ix_events_body_path", event_body_json().label("body_json"), postgresql_using="gin",
      postgresql_ops={"body_json": "jsonb_path_ops"})


class Delivery(db.Model):
    """One event for one subscription: its state and attempt count are the truth."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_pk", "subscription_id", name="uq_deliveries_event_subscription"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="ck_deliveries_status"),
        Index("ix_deliveries_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_deliveries_subscription_created", "subscription_id", "created_at", "id"),
        Index(
            "ix_deliveries_open_due",
            "next_retry_at",
            postgresql_where=text("status IN ('pending', 'retrying')"),
        ),
        # A bulk retry job is finished once none of the re-sends it queued is still queued.
        Index("ix_deliveries_bulk_retry_pending", "bulk_retry_id",
              postgresql_where=text("manual_pending")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_pk: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False
    )
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    event_type: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set while a worker holds the delivery; a claim past this time counts as abandoned.
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A manual re-send is queued: automatic messages for this delivery claim nothing.
    manual_pending: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    # The bulk retry job that queued the manual re-send (None: a single retry, replay...);
    # copied onto the attempt it makes. A plain id: jobs are never deleted, and a foreign
    # key would cost a lookup on every write of the column.
    bulk_retry_id: Mapped[str | None] = mapped_column(String(32))
    last_response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    event: Mapped[Event] = relationship(lazy="joined", innerjoin=True)
    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        order_by="DeliveryAttempt.attempt_number", lazy="selectin", viewonly=True
    )


class DeliveryAttempt(db.Model):
    """One HTTP attempt, successful or not; never updated after it is written."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt_number", name="uq_attempts_delivery_number"),
        CheckConstraint(_in("trigger", ATTEMPT_TRIGGERS), name="ck_attempts_trigger"),
        Index("ix_attempts_started", "started_at"),
        Index("ix_attempts_bulk_retry", "bulk_retry_id",
              postgresql_where=text("bulk_retry_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False
    )
    attempt_number: Mapped[int] = mapped_column(Integer, nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    request_headers: Mapped[dict] = mapped_column(JSONB, nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict | None] = mapped_column(JSONB)
    response_body: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The bulk retry job whose manual re-send this was.
    bulk_retry_id: Mapped[str | None] = mapped_column(String(32))

    @property
    def error(self) -> dict | None:
        """Why no usable response arrived (timeout, connection error...), or None."""
        if self.error_class is None and self.error_message is None:
            return None
        return {"error_class": self.error_class, "message": self.error_message}


class MaintenanceRun(db.Model):
    """When a housekeeping task last finished, by task name: `webhooks.sweep` stamps its
    row, and the API (another process, often another machine) reads it for `/readyz` and
    `/metrics` (webhooks_api.services.sweep_record)."""

    __tablename__ = "maintenance_runs"

    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PortalSession(db.Model):
    """A short-lived, scoped credential for the embedded portal (a tenant's customer never
    holds the tenant's API key). Only the SHA-256 of its token's secret is stored."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
    )
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # The subscriptions it is bound to; None: every subscription of the tenant.
    subscription_ids: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    read_only: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                            server_default=text("false"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class PortalSettings(db.Model):
    """How a tenant's portal is embedded and branded; a tenant without a row has the
    defaults (no origin may frame it, the service's own title and colour)."""

    __tablename__ = "portal_settings"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    # Origins (scheme://host[:port]) allowed to frame the portal: CSP frame-ancestors.
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False,
                                                       server_default="{}")
    title: Mapped[str | None] = mapped_column(String(100))
    accent_color: Mapped[str | None] = mapped_column(String(7))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class BulkRetry(db.Model):
    """A job re-sending a tenant's matching deliveries, oldest first, a chunk at a time
    (webhooks_worker.maintenance.bulk_retry): its filter, its progress, and the position
    of the last delivery it considered, so that a chunk run twice queues nothing twice."""

    __tablename__ = "bulk_retries"
    __table_args__ = (
        CheckConstraint(_in("status", BULK_RETRY_STATUSES), name="ck_bulk_retries_status"),
        CheckConstraint(_in("delivery_status", BULK_RETRY_DELIVERY_STATUSES),
                        name="ck_bulk_retries_delivery_status"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_bulk_retries_tenant_key"),
        # The sweep looks for unfinished jobs whose chain of chunks went quiet.
        Index("ix_bulk_retries_unfinished", "updated_at",
              postgresql_where=text("finished_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # The filter: deliveries in this state created in [since, until), and optionally of
    # one event type, one subscription, one last response status.
    delivery_status: Mapped[str] = mapped_column(String(16), nullable=False)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event_type: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(32))
    response_status: Mapped[int | None] = mapped_column(Integer)
    # WEBHOOKS_BULK_RETRY_PER_SECOND when the job was created.
    per_second: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    # Deliveries matching the filter when the job was created (the snapshot it works on).
    matched: Mapped[int] = mapped_column(Integer, nullable=False)
    queued: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Matched deliveries not re-sent, by reason.
    skipped: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    # Attempts made by its re-sends, counted when it finished (until then, counted live).
    done_count: Mapped[int | None] = mapped_column(Integer)
    # (created_at, id) of the last delivery considered; every match after it is still to go.
    cursor_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor_id: Mapped[str | None] = mapped_column(String(32))
    scanned_all: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                              server_default=text("false"))
    # Which chunk message may run next: a duplicate or stale one carries an older step.
    step: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BulkRetryBudget(db.Model):
    """How many re-sends a tenant's bulk retry jobs queued in the current one-second
    window: the chunks of all its jobs take from it, under its row lock."""

    __tablename__ = "bulk_retry_budgets"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                        nullable=False)
    queued: Mapped[int] = mapped_column(Integer, nullable=False)
