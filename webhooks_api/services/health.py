"""Readiness: can this process reach PostgreSQL and the broker right now?

Each check opens its own short-lived connection with a deadline of CHECK_TIMEOUT_SECONDS,
so a probe answers within a few seconds even when a server hangs, and it tests reaching
the server rather than a pooled connection that may be stale. Errors are logged in full;
the probe's answer names only the error class (it is unauthenticated).

The database check also reads, on the same connection, when the last sweep finished: a
sweep that stopped (beat down) is a warning, not unreadiness, since this process still
serves every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg2
from kombu import Connection

from webhooks_api.config import Settings
from webhooks_api.services.sweep_record import LAST_SWEEP_SQL, LastSweep

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class DependencyState:
    name: str
    up: bool
    error: str | None = None


@dataclass(frozen=True)
class Readiness:
    dependencies: list[DependencyState]
    warnings: dict[str, str]  # what needs an operator, by what it is about


def check_database(settings: Settings) -> tuple[DependencyState, LastSweep | None]:
    """The database's state and, when it answers, when the last sweep finished."""
    try:
        connection = psycopg2.connect(
            settings.database_url, connect_timeout=CHECK_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={CHECK_TIMEOUT_SECONDS * 1000}",
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(LAST_SWEEP_SQL)
                swept = LastSweep.from_row(cursor.fetchone())
        finally:
            connection.close()
    except Exception as error:  # every failure means "not ready", whatever its kind
        logger.warning("readiness: database unreachable", exc_info=True)
        return DependencyState("database", False, type(error).__name__), None
    return DependencyState("database", True), swept


def check_broker(settings: Settings) -> DependencyState:
    transport_options = {**settings.broker_transport_options,
                         "socket_connect_timeout": CHECK_TIMEOUT_SECONDS,
                         "socket_timeout": CHECK_TIMEOUT_SECONDS}
    try:
        with Connection(settings.broker_url, connect_timeout=CHECK_TIMEOUT_SECONDS,
                        transport_options=transport_options) as connection:
            connection.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # every failure means "not ready", whatever its kind
        logger.warning("readiness: broker unreachable", exc_info=True)
        return DependencyState("broker", False, type(error).__name__)
    return DependencyState("broker", True)


def readiness(settings: Settings) -> Readiness:
    database, swept = check_database(settings)
    sweep_warning = swept and swept.warning(settings.sweep_interval_seconds)
    return Readiness([database, check_broker(settings)],
                     {"sweep": sweep_warning} if sweep_warning else {})
