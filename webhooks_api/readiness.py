"""Readiness: do the dependencies answer? PostgreSQL (the truth) and the broker.

Each check gets a fresh, short-timeout connection of its own rather than the app's pools,
so a probe says whether the dependency answers now, not whether a pooled connection
survived, and a down dependency fails the probe in about a second, not a minute.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Connection
from sqlalchemy import text
from sqlalchemy.orm import Session

from .config import Settings

CONNECT_TIMEOUT_SECONDS = 2
_MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Check:
    name: str
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None

    def as_json(self) -> dict:
        if self.up:
            return {"status": "up"}
        return {"status": "down", "error": self.error}


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]


def check_database(session: Session) -> Check:
    try:
        session.execute(text("SELECT 1"))
        session.rollback()
    except Exception as error:  # any failure means "not ready", named in the answer
        session.rollback()
        return Check("database", _describe(error))
    return Check("database")


def check_broker(settings: Settings) -> Check:
    try:
        with Connection(settings.broker_url, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        transport_options=settings.broker_transport_options) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=CONNECT_TIMEOUT_SECONDS)
            connection.default_channel  # noqa: B018 (opening a channel talks to the broker)
    except Exception as error:  # any failure means "not ready", named in the answer
        return Check("broker", _describe(error))
    return Check("broker")


def readiness(session: Session, settings: Settings) -> list[Check]:
    return [check_database(session), check_broker(settings)]
