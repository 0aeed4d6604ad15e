"""When the last sweep finished: stamped by `webhooks.sweep`, read by `/readyz` and `/metrics`.

Beat can die silently (and the sweep with it), so its work must be seen from the API, which
runs in other processes, often on other machines. The stamp is a row of PostgreSQL
(`maintenance_runs`): the API reads PostgreSQL for every request and for `/readyz`, while
Redis is not a dependency of every deployment (the broker may be RabbitMQ). It is written by
the worker that ran the sweep, in the sweep's last transaction, so it says that beat sent
the sweep and a worker ran it to the end. Times come from the database's clock, so no two
machines' clocks are compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from webhooks_api.messaging.names import SWEEP_TASK

# Beyond this many sweep intervals without a finished sweep, `/readyz` warns.
LATE_AFTER_INTERVALS = 3

RECORD_SWEEP = text("""
    INSERT INTO maintenance_runs (task, finished_at) VALUES (:task, now())
    ON CONFLICT (task) DO UPDATE SET finished_at = excluded.finished_at
""").bindparams(task=SWEEP_TASK)

# Plain SQL: run through SQLAlchemy (`/metrics`) and on readiness's own psycopg2 connection.
LAST_SWEEP_SQL = f"""
    SELECT extract(epoch FROM finished_at), extract(epoch FROM now() - finished_at)
    FROM maintenance_runs WHERE task = '{SWEEP_TASK}'
"""


@dataclass(frozen=True)
class LastSweep:
    finished_at: float | None  # unix time; None while no sweep has finished
    age_seconds: float | None

    @classmethod
    def from_row(cls, row) -> LastSweep:
        if row is None:
            return cls(None, None)
        return cls(float(row[0]), float(row[1]))

    def warning(self, interval_seconds: int) -> str | None:
        """What `/readyz` tells an operator, or None while sweeps keep finishing."""
        limit = LATE_AFTER_INTERVALS * interval_seconds
        if self.age_seconds is None:
            return "no sweep has finished yet: is beat running? (docs/operations.md)"
        if self.age_seconds > limit:
            return (f"the last sweep finished {self.age_seconds:.0f} s ago, more than "
                    f"{LATE_AFTER_INTERVALS} sweep intervals ({limit} s): is beat running? "
                    "(docs/operations.md)")
        return None


def last_sweep(session: Session) -> LastSweep:
    row = session.execute(text(LAST_SWEEP_SQL)).first()
    session.rollback()
    return LastSweep.from_row(row)
