"""Single statements without BEGIN and COMMIT: the worker's hot paths (the claim of a
delivery, the store-and-fan-out of a new event) are one statement each, atomic by itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.orm import Session


@contextmanager
def autocommit(session: Session) -> Iterator[Connection]:
    """The session's connection with each statement its own transaction: no BEGIN and no
    COMMIT round trips around a single statement, which is atomic by itself. psycopg2's
    `autocommit` flag is switched on the connection and back (no isolation-level change,
    so nothing is sent to the server); the session then releases the connection as usual.
    The session must not be inside a transaction that has sent anything yet."""
    connection = session.connection()
    dbapi_connection = connection.connection.dbapi_connection
    dbapi_connection.autocommit = True
    try:
        yield connection
    finally:
        if not dbapi_connection.closed:  # a lost connection raises its own error
            dbapi_connection.autocommit = False
    session.commit()  # nothing was begun on the server: this only lets the connection go
