"""Server-side prepared statements for the worker's hot statements, and the connection
that runs them.

PostgreSQL spent 0.5–0.7 ms of CPU on each execution of the claim, the record of an
attempt and the store-and-fan-out of a new event, mostly parsing and planning the same
text again: the claim cost 0.49 ms as text and 0.21 ms as `EXECUTE` of a prepared
statement (docs/decisions/0003-prepared-statements.md). On 2 cores that is CPU the
deliveries themselves need.

A `Prepared` is declared once, at import, with a name, its SQL (`:name` parameters, as
SQLAlchemy's `text()` writes them) and each parameter's PostgreSQL type. Every declared
statement is prepared on a connection the first time one is used there, then sent as
`EXECUTE name(...)`. Prepared statements belong to the database session and outlive a
rolled-back transaction; PostgreSQL re-plans them itself after a migration.

Two ways to run one:
- `run`: the common case, a statement that is atomic by itself (the claim, a successful
  attempt's record, a new event's store-and-fan-out), on a pooled connection in
  autocommit mode: no BEGIN, no COMMIT, and none of the ORM session's bookkeeping, which
  cost 0.26 ms of CPU per statement where a bare connection costs 0.13 ms. The connection
  goes back to the pool as soon as the rows are read, so hundreds of deliveries in flight
  in one process share the pool's few connections, none held during a POST. A lost
  connection is invalidated by SQLAlchemy and its error reaches the task, which retries.
- `execute`: inside a session's transaction, where the statement must commit together
  with others (a failed attempt that may disable its subscription).

They need a session that stays one server connection: PostgreSQL directly, or a pooler in
session mode (PgBouncer's transaction mode does not keep SQL-level prepared statements).
"""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine

from webhooks_api.extensions import db

# Bounded, shared by every delivery in flight in the process: a statement waits for a free
# connection rather than opening more (docs/operations.md gives max_connections).
AUTOCOMMIT_POOL = {"pool_size": 10, "max_overflow": 0, "pool_timeout": 60,
                   "pool_recycle": 1800, "pool_pre_ping": False}
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


@cache
def _autocommit(engine: Engine) -> Engine:
    """A pool of autocommit connections to the app engine's database, beside the session's
    pool. Switching a connection of the session's pool to autocommit for one statement
    costs a `SET default_transaction_isolation TO DEFAULT` round trip when it goes back
    (seen in PostgreSQL's statement log); these connections stay in autocommit."""
    return create_engine(engine.url, isolation_level="AUTOCOMMIT", **AUTOCOMMIT_POOL)


def run(statement: Prepared, params: dict) -> Result:
    """Run `statement` in autocommit on a pooled connection of the app's database (each
    statement commits by itself); the rows are read before the connection goes back."""
    with _autocommit(db.engine).connect() as connection:
        return execute(connection, statement, params).freeze()()
