"""Server-side prepared statements for the worker's hot statements, and the connection
that runs them.

PostgreSQL spent 0.5–0.7 ms of CPU on each execution of the claim, the record of an
attempt and the store-and-fan-out of a new event, mostly parsing and planning the same
text again: the claim cost 0.49 ms as text and 0.21 ms as `EXECUTE` of a prepared
statement (docs/PERFORMANCE.md "Prepared statements"). On 2 cores that is CPU the
deliveries themselves need.

A `Prepared` is declared once, at import, with a name, its SQL (`:name` parameters, as
SQLAlchemy's `text()` writes them) and each parameter's PostgreSQL type. Every declared
statement is prepared on a connection the first time one is used there, then sent as
`EXECUTE name(...)`. Prepared statements belong to the database session and outlive a
rolled-back transaction; PostgreSQL re-plans them itself after a migration.

Two ways to run one:
- `run`: the common case, a statement that is atomic by itself (the claim, a successful
  attempt's record, a new event's store-and-fan-out), on the thread's own connection in
  autocommit mode: no BEGIN, no COMMIT, and none of the ORM session's bookkeeping, which
  cost 0.26 ms of CPU per statement where a kept connection costs 0.13 ms (docs/PERFORMANCE.md
  "Round 4"). The connection is opened once per thread (and process) and kept; one that
  was lost is dropped, and the error reaches the task, which retries on a new one.
- `execute`: inside a session's transaction, where the statement must commit together
  with others (a failed attempt that may disable its subscription).

They need a session that stays one server connection: PostgreSQL directly, or a pooler in
session mode (PgBouncer's transaction mode does not keep SQL-level prepared statements).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator

from sqlalchemy import Connection, CursorResult, Engine, create_engine
from sqlalchemy.pool import NullPool

from webhooks_api.extensions import db

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")
_PREPARED_KEY = "webhooks_prepared_statements"
_DECLARED: dict[str, Prepared] = {}


class Prepared:
    """One statement: `PREPARE name (types) AS sql-with-$n` and its `EXECUTE name (...)`."""

    def __init__(self, name: str, sql: str, types: dict[str, str]):
        used = set(_PARAMETER.findall(sql))
        if used != set(types):
            raise ValueError(f"{name}: parameters {sorted(used)} but types for "
                             f"{sorted(types)}")
        order = list(types)
        numbered = _PARAMETER.sub(lambda match: f"${order.index(match.group(1)) + 1}", sql)
        self.name = name
        self.prepare_sql = f"PREPARE {name} ({', '.join(types.values())}) AS {numbered}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(f'%({p})s' for p in order)})"
        _DECLARED[name] = self


def execute(connection: Connection, statement: Prepared, params: dict) -> CursorResult:
    """Run `statement` with `params` on `connection`, preparing all of them there first if
    this connection has not seen them (noted in its `info`, which SQLAlchemy empties when
    it replaces the connection). The PREPAREs go straight to the driver's cursor: set-up
    once per connection, not statements of the task that happens to open it."""
    if not connection.info.get(_PREPARED_KEY):
        with connection.connection.cursor() as cursor:
            for declared in _DECLARED.values():
                cursor.execute(declared.prepare_sql)
        connection.info[_PREPARED_KEY] = True
    return connection.exec_driver_sql(statement.execute_sql, params)


class _Kept(threading.local):
    """This thread's connection, and the process and app engine it was opened for."""

    connection: Connection | None = None
    owner: tuple[int, Engine] | None = None


_kept = _Kept()
_autocommit_engines: dict[int, tuple[Engine, Engine]] = {}
_engines_lock = threading.Lock()


def _autocommit_engine(app_engine: Engine) -> Engine:
    """An autocommit engine of the app engine's database that pools nothing: its
    connections are kept by the threads that opened them, outside the app's pool (which
    a threads pool's 16 workers would otherwise exhaust)."""
    with _engines_lock:
        known = _autocommit_engines.get(id(app_engine))
        if known is None or known[0] is not app_engine:
            known = _autocommit_engines[id(app_engine)] = (app_engine, create_engine(
                app_engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"))
        return known[1]


def run(statement: Prepared, params: dict) -> CursorResult:
    """Run `statement` on this thread's own autocommit connection to the app's database
    (each statement commits by itself)."""
    owner = (os.getpid(), db.engine)
    connection = _kept.connection
    if connection is None or _kept.owner != owner:
        connection = _kept.connection = _autocommit_engine(owner[1]).connect()
        _kept.owner = owner
    try:
        return execute(connection, statement, params)
    except BaseException:
        # A lost connection is replaced on the task's retry; any other error only ends
        # the (empty) transaction SQLAlchemy began around the statement.
        if connection.invalidated:
            _kept.connection = None
            connection.close()
        else:
            connection.rollback()
        raise


# Kept connections that threads running statements only now and then (the slow lanes)
# borrow and give back, so that a few backends serve all of them.
_STASHED_MAX = 4
_stash: list[tuple[Connection, tuple[int, Engine]]] = []
_stash_lock = threading.Lock()


@contextlib.contextmanager
def borrowed_connection() -> Iterator[None]:
    """`run` inside the block uses a kept connection borrowed from the process's stash (a
    new one when the stash is empty) and puts it back after, or closes it when the stash
    is full."""
    with _stash_lock:
        _kept.connection, _kept.owner = _stash.pop() if _stash else (None, None)
    try:
        yield
    finally:
        connection, owner = _kept.connection, _kept.owner
        _kept.connection = _kept.owner = None
        if connection is not None and not _stashed(connection, owner):
            connection.close()


def _stashed(connection: Connection, owner: tuple[int, Engine]) -> bool:
    """Put a kept connection back in the stash, unless it is full (or from another process)."""
    with _stash_lock:
        if owner[0] != os.getpid() or len(_stash) >= _STASHED_MAX:
            return False
        _stash.append((connection, owner))
        return True
