"""Readiness: can this process reach PostgreSQL and the broker right now?

Each check opens its own short-lived connection with a deadline of CHECK_TIMEOUT_SECONDS,
so a probe answers within a few seconds even when a server hangs, and it tests reaching
the server rather than a pooled connection that may be stale. Errors are logged in full;
the probe's answer names only the error class (it is unauthenticated).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg2
from kombu import Connection

from ..config import Settings

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class DependencyState:
    name: str
    up: bool
    error: str | None = None


def check_database(settings: Settings) -> DependencyState:
    try:
        connection = psycopg2.connect(
            settings.database_url, connect_timeout=CHECK_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={CHECK_TIMEOUT_SECONDS * 1000}",
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connection.close()
    except Exception as error:  # every failure means "not ready", whatever its kind
        logger.warning("readiness: database unreachable", exc_info=True)
        return DependencyState("database", False, type(error).__name__)
    return DependencyState("database", True)


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


def readiness(settings: Settings) -> list[DependencyState]:
    return [check_database(settings), check_broker(settings)]
