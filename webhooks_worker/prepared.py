"""Server-side prepared statements for the worker's hot statements.

PostgreSQL spent 0.5–0.7 ms of CPU on each execution of the claim, the record of an
attempt and the store-and-fan-out of a new event, mostly parsing and planning the same
text again: the claim cost 0.49 ms as text and 0.21 ms as `EXECUTE` of a prepared
statement (docs/PERFORMANCE.md "Prepared statements"). On 2 cores that is CPU the
deliveries themselves need.

A `Prepared` is declared once, at import, with a name, its SQL (`:name` parameters, as
SQLAlchemy's `text()` writes them) and each parameter's PostgreSQL type. `execute` prepares
every declared statement on a pooled connection the first time it is used there (noted in
the connection's `info`, which SQLAlchemy empties when it replaces the connection), then
sends `EXECUTE name(...)`. Prepared statements belong to the database session and outlive
a rolled-back transaction; PostgreSQL re-plans them itself after a migration.

They need a session that stays one server connection: PostgreSQL directly, or a pooler in
session mode (PgBouncer's transaction mode does not keep SQL-level prepared statements).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, CursorResult

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
    """Run `statement` with `params` on `connection`, preparing all of them there first
    if this connection has not seen them."""
    if not connection.info.get(_PREPARED_KEY):
        for declared in _DECLARED.values():
            connection.exec_driver_sql(declared.prepare_sql)
        connection.info[_PREPARED_KEY] = True
    return connection.exec_driver_sql(statement.execute_sql, params)
