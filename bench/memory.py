"""Worker memory over the run: RSS of the worker's process tree against attempts made.

A sampler thread reads the RSS of the worker and its pool children (from /proc) and the
number of stored attempts every couple of seconds for the whole run; the memory scenario
then tops the run up with more deliveries until the target count, so the figures compare
the worker after 10,000 deliveries with the same worker much later.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing

import psycopg2

from bench.workload import make_tenant, publish_burst, wait_attempted

FIRST_CHECKPOINT = 10_000
# Attempts made by the main worker: the cost phase's own worker is not the one sampled.
MAIN_WORKER_ATTEMPTS = r"""
    SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
    WHERE d.tenant_id NOT LIKE 'bench\_cost%'
"""


class MemorySampler:
    def __init__(self, worker, database_url: str, interval: float = 2.0):
        self.worker = worker
        self.database_url = database_url
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        connection = psycopg2.connect(self.database_url)
        connection.autocommit = True
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                self.sample(connection, started)
                self._stop.wait(self.interval)
            self.sample(connection, started)
        finally:
            connection.close()

    def sample(self, connection, started: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute(MAIN_WORKER_ATTEMPTS)
            attempts = cursor.fetchone()[0]
        self.samples.append({"seconds": round(time.monotonic() - started, 1),
                             "attempts": attempts, "rss": self.worker.rss_mb()})

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join(30)
        return self.samples


def reach_target(bench) -> None:
    """The memory scenario: top the run up to `memory_target` deliveries (0: nothing)."""
    if bench.sizes["memory_target"]:
        top_up(bench, bench.sizes["memory_target"])


def top_up(bench, target: int, batch: int = 5000) -> None:
    """Deliver 1-subscription events until the database holds `target` attempts."""
    with closing(psycopg2.connect(bench.env["DATABASE_URL"])) as connection, \
            connection.cursor() as cursor:
        cursor.execute(MAIN_WORKER_ATTEMPTS)
        missing = target - cursor.fetchone()[0]
    round_number = 0
    while missing > 0:
        events = min(batch, missing)
        tenant = make_tenant(bench.session, bench.settings, f"mem{round_number}",
                             [bench.receiver.url("memory")])
        publish_burst(bench.publish, tenant, events)
        wait_attempted(bench.session, tenant, events, bench.drain_timeout(events), 0.5)
        missing -= events
        round_number += 1


def summarize(samples: list[dict]) -> dict:
    """RSS when the worker had made 10,000 attempts, and at the end of the run."""
    first = next((s for s in samples if s["attempts"] >= FIRST_CHECKPOINT), None)
    last = samples[-1] if samples else None
    summary: dict = {"at_10k": first, "at_end": last}
    if first and last and last["attempts"] > first["attempts"]:
        summary["growth_pct"] = round(
            100 * (last["rss"]["total"] - first["rss"]["total"]) / first["rss"]["total"], 1)
    return summary


def figures(summary: dict) -> dict:
    result = {}
    if summary["at_10k"]:
        result["worker_rss_mb_10k"] = summary["at_10k"]["rss"]["total"]
    if summary["at_end"]:
        result["worker_rss_mb"] = summary["at_end"]["rss"]["total"]
        result["worker_rss_deliveries"] = summary["at_end"]["attempts"]
    if "growth_pct" in summary:
        result["worker_rss_growth_pct"] = summary["growth_pct"]
    return result
