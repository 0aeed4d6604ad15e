"""Delivery and subscription state read from PostgreSQL and the broker, for `/metrics` and
the `stats` command.

PostgreSQL answers what is owed (open deliveries, how overdue the most overdue one is);
the broker answers what is queued (messages waiting in each queue and, on Redis, the
messages workers hold unacknowledged: in flight or waiting for their countdown).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kombu import Connection
from sqlalchemy import text
from sqlalchemy.orm import Session

from webhooks_api.config import Settings
from webhooks_api.messaging.names import WORKER_QUEUES as QUEUES

BROKER_TIMEOUT_SECONDS = 2

_DELIVERIES_BY_STATUS = text("""
    SELECT status, count(*) AS n FROM deliveries
    WHERE (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
      AND (NOT :open_only OR status IN ('pending', 'retrying'))
    GROUP BY status
""")

# Both served by the partial index on open deliveries (ix_deliveries_open_due).
_OPEN_AGES = text("""
    SELECT coalesce(extract(epoch FROM now() - min(next_retry_at)
                                    FILTER (WHERE next_retry_at <= now())), 0)
               AS oldest_due_seconds,
           coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_open_seconds
    FROM deliveries
    WHERE status IN ('pending', 'retrying')
      AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
""")

_SUBSCRIPTIONS_BY_STATUS = text("""
    SELECT status, count(*) AS n, count(*) FILTER (WHERE consecutive_failures > 0) AS failing
    FROM subscriptions
    WHERE deleted_at IS NULL
      AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)
    GROUP BY status
""")


@dataclass(frozen=True)
class DatabaseState:
    deliveries_by_status: dict[str, int]
    # How late the most overdue open delivery is (0 when none is due): the delivery lag.
    oldest_due_seconds: float
    # Age of the oldest delivery still expecting an attempt (retries included).
    oldest_open_seconds: float
    subscriptions_by_status: dict[str, int]
    # Subscriptions whose last attempt failed (consecutive failures > 0), by status.
    failing_subscriptions_by_status: dict[str, int]


@dataclass(frozen=True)
class BrokerState:
    messages_by_queue: dict[str, int]
    # Redis only: messages taken by workers and not yet acknowledged (running or held
    # for a countdown); None on other brokers.
    unacked_messages: int | None


def database_state(session: Session, tenant_id: str | None = None,
                   open_only: bool = True) -> DatabaseState:
    """Counts of deliveries (only open ones unless `open_only` is false) and subscriptions."""
    scope = {"tenant_id": tenant_id}
    deliveries = {row.status: row.n for row in session.execute(
        _DELIVERIES_BY_STATUS, {**scope, "open_only": open_only})}
    ages = session.execute(_OPEN_AGES, scope).one()
    subscriptions = session.execute(_SUBSCRIPTIONS_BY_STATUS, scope).all()
    session.rollback()
    return DatabaseState(
        deliveries_by_status=deliveries,
        oldest_due_seconds=float(ages.oldest_due_seconds),
        oldest_open_seconds=float(ages.oldest_open_seconds),
        subscriptions_by_status={row.status: row.n for row in subscriptions},
        failing_subscriptions_by_status={row.status: row.failing for row in subscriptions},
    )


def _queue_length(connection: Connection, queue: str, redis: bool) -> int:
    """Messages waiting in `queue`: on Redis the LLEN of its list through kombu's client,
    which applies the key prefix (kombu's passive declare misses prefixed keys); on AMQP
    a passive declare, where a queue that does not exist yet holds nothing."""
    channel = connection.channel()
    try:
        if redis:
            with channel.conn_or_acquire() as client:
                return int(client.llen(queue))
        return channel.queue_declare(queue=queue, passive=True).message_count
    except connection.channel_errors:
        return 0
    finally:
        with contextlib.suppress(Exception):  # the broker closed it already (AMQP 404)
            channel.close()


def broker_state(settings: Settings) -> BrokerState:
    with Connection(settings.broker_url, connect_timeout=BROKER_TIMEOUT_SECONDS,
                    transport_options=settings.broker_transport_options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                     timeout=BROKER_TIMEOUT_SECONDS)
        lengths = {queue: _queue_length(connection, queue, settings.broker_is_redis)
                   for queue in QUEUES}
        unacked = None
        if settings.broker_is_redis:
            channel = connection.default_channel
            with channel.conn_or_acquire() as client:  # applies the key prefix
                unacked = int(client.hlen(channel.unacked_key))
    return BrokerState(messages_by_queue=lengths, unacked_messages=unacked)
