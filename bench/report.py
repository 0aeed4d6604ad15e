"""Percentiles, the printed table and the JSON file of one run."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_s: list[float]) -> dict:
    """p50 / p99 / max in milliseconds of publish → receive latencies given in seconds."""
    def ms(value):
        return None if value is None else round(value * 1000, 1)
    return {"samples": len(latencies_s), "p50_ms": ms(percentile(latencies_s, 0.50)),
            "p99_ms": ms(percentile(latencies_s, 0.99)),
            "max_ms": ms(max(latencies_s, default=None))}


def slowest_arrivals(records: list[tuple[float, str]], published: dict[str, float],
                     share: float = 0.02) -> list[dict]:
    """The slowest `share` of arrivals, each with when its event was published (seconds
    after the first): a stall shows as a run of neighbours, a cold start as the first."""
    first = min(published.values(), default=0.0)
    timed = sorted(((arrived - published[event_id], published[event_id] - first)
                    for arrived, event_id in records if event_id in published), reverse=True)
    slowest = sorted(timed[:max(1, int(len(timed) * share))], key=lambda pair: pair[1])
    return [{"published_at_s": round(at, 2), "ms": round(1000 * latency, 1)}
            for latency, at in slowest]


def arrival_latencies(records: list[tuple[float, str]], published: dict[str, float]
                      ) -> list[float]:
    """Arrival minus publish time (both CLOCK_MONOTONIC) of every request of these events."""
    return [arrived - published[event_id] for arrived, event_id in records
            if event_id in published]


def missing_latencies(records: list[tuple[float, str]], published: dict[str, float],
                      per_event: int, until: float) -> list[float]:
    """Lower bounds for the arrivals that never came: `until` minus publish time for each of
    the `per_event` arrivals an event is missing. A backlog that did not drain must raise a
    percentile, not leave it out."""
    arrived = Counter(event_id for _, event_id in records if event_id in published)
    return [until - at for event_id, at in published.items()
            for _ in range(max(0, per_event - arrived[event_id]))]


# (JSON key, label, unit) in the order of the printed table.
_ROWS = (
    ("receiver_capacity_per_s", "receiver capacity (16 conns, own process)", "req/s"),
    ("task_floor_per_s", "task floor: no-op deliver tasks, Procfile worker", "tasks/s"),
    ("ceiling_per_s", "ceiling: one requests.Session, 1 URL", "req/s"),
    ("e2e_per_s_1sub", "end to end, 1 subscription", "deliveries/s"),
    ("ratio_1sub", "  ÷ ceiling", "×"),
    ("ratio_bound_1sub", "  bound: task floor ÷ tasks per delivery ÷ ceiling", "×"),
    ("ceiling_per_s_100sub", "ceiling: one requests.Session, 100 URLs", "req/s"),
    ("e2e_per_s_100sub", "end to end, 100 subscriptions", "deliveries/s"),
    ("ratio_100sub", "  ÷ ceiling", "×"),
    ("ratio_bound_100sub", "  bound: task floor ÷ tasks per delivery ÷ ceiling", "×"),
    ("worker_cpu_ms_per_delivery_1sub", "worker CPU per delivery, 1 subscription", "ms"),
    ("worker_cpu_ms_per_delivery_100sub", "worker CPU per delivery, 100 subscriptions", "ms"),
    ("publisher_cpu_ms_per_delivery_1sub", "publisher (bench) CPU per delivery, 1 sub", "ms"),
    ("machine_cpu_ms_per_delivery_1sub", "whole machine CPU per delivery, 1 sub", "ms"),
    ("machine_cpu_ms_per_delivery_100sub", "whole machine CPU per delivery, 100 subs", "ms"),
    ("latency_p50_ms", "publish → receive p50 at 50 events/s", "ms"),
    ("latency_p99_ms", "publish → receive p99 at 50 events/s", "ms"),
    ("latency_disk_fdatasync_max_ms", "  disk: slowest 8 KiB fdatasync in that run", "ms"),
    ("latency_disk_stalls", "  disk: fdatasyncs over 10 ms in that run", ""),
    ("latency_200_p50_ms", "publish → receive p50 at 200 events/s", "ms"),
    ("latency_200_p99_ms", "publish → receive p99 at 200 events/s", "ms"),
    ("fanout_subscriptions", "fan-out: subscriptions", ""),
    ("fanout_10k_rows_s", "fan-out: every delivery row stored", "s"),
    ("fanout_10k_enqueue_s", "fan-out: every deliver task enqueued", "s"),
    ("fanout_10k_delivered_s", "fan-out: every delivery received", "s"),
    ("fanout_10k_stored_s", "fan-out: every success stored", "s"),
    ("fanout_10k_filtered_enqueue_s", "fan-out, a filter on each: every task enqueued", "s"),
    ("hol_p99_ms_baseline", "healthy p99, no hanging endpoints", "ms"),
    ("hol_p99_ms_hanging", "healthy p99, 10 % hanging endpoints", "ms"),
    ("hol_p99_ratio", "  ratio", "×"),
    ("e2e_per_s_100ports", "end to end, 100 receivers on 100 ports", "deliveries/s"),
    ("ports_vs_one_port", "  ÷ 100 subscriptions on one port", "×"),
    ("receiver_connections_per_delivery_100ports", "  new receiver connections per delivery",
     ""),
    ("e2e_per_s_slow_receivers", "end to end, 100 receivers answering in 200 ms", "deliveries/s"),
    ("slow_receivers_vs_waiting", "  ÷ slots ÷ 200 ms (tasks waiting for answers)", "×"),
    ("e2e_per_s_internet", "end to end, 100 receivers answering in 20–800 ms, 5 hanging",
     "deliveries/s"),
    ("internet_vs_fast", "  ÷ 100 subscriptions on one fast port", "×"),
    ("e2e_per_s_busy_slow", "end to end, 1 receiver answering in 200 ms, a burst",
     "deliveries/s"),
    ("busy_slow_vs_fast", "  ÷ 1 fast subscription", "×"),
    ("hosts_receivers", "hosts: receivers, each on a host of its own", ""),
    ("e2e_per_s_hosts", "end to end, receivers on distinct hosts", "deliveries/s"),
    ("receiver_connections_per_delivery_hosts", "  new receiver connections per delivery", ""),
    ("hanging_sustained_p99_ms_baseline", "healthy p99 at the sustained rate, no hanging", "ms"),
    ("hanging_sustained_p99_ms_hanging", "healthy p99 at the sustained rate, 10 % hanging (30 s)",
     "ms"),
    ("hanging_sustained_p99_ratio", "  ratio", "×"),
    ("hanging_sustained_messages_per_delivery", "  deliver messages per hanging delivery", ""),
    ("hanging_schedule_messages_per_delivery",
     "deliver messages per hanging delivery, whole schedule (30 × faster)", ""),
    ("hanging_schedule_messages_max", "  at most, for one delivery", ""),
    ("publish_api_p50_ms_1", "POST /publish p50, 1 subscription", "ms"),
    ("publish_api_p99_ms_1", "POST /publish p99, 1 subscription", "ms"),
    ("publish_api_p50_ms_1000", "POST /publish p50, 1,000 subscriptions", "ms"),
    ("publish_api_p99_ms_1000", "POST /publish p99, 1,000 subscriptions", "ms"),
    ("search_payload_p50_ms", "GET /deliveries?data.invoice_id= p50, 100,000 deliveries",
     "ms"),
    ("search_payload_p99_ms", "GET /deliveries?data.invoice_id= p99, 100,000 deliveries",
     "ms"),
    ("sql_per_delivery", "SQL statements per delivery (1 sub)", ""),
    ("sql_per_delivery_100sub", "SQL statements per delivery (100 subs)", ""),
    ("redis_per_delivery", "Redis commands per delivery, worker (1 sub)", ""),
    ("redis_per_delivery_100sub", "Redis commands per delivery, worker (100 subs)", ""),
    ("pg_connections_per_delivery", "new PostgreSQL connections per delivery", ""),
    ("receiver_connections_per_delivery", "new receiver connections per delivery", ""),
    ("worker_rss_mb_10k", "worker RSS after 10,000 deliveries", "MB"),
    ("worker_rss_mb", "worker RSS at the end", "MB"),
    ("worker_rss_deliveries", "  deliveries by then", ""),
    ("worker_rss_growth_pct", "  growth since 10,000", "%"),
)


def _key(figures: dict, key: str) -> str:
    """Fan-out keys name their size (`fanout_2000_rows_s` in --quick)."""
    if key.startswith("fanout_10k_") and "fanout_subscriptions" in figures:
        size = figures["fanout_subscriptions"]
        return key if size == 10_000 else key.replace("10k", str(size))
    return key


def print_table(figures: dict) -> None:
    width = max(len(label) for _, label, _ in _ROWS)
    print()
    for row_key, label, unit in _ROWS:
        key = _key(figures, row_key)
        if key in figures and figures[key] is not None:
            value = figures[key]
            shown = f"{value:,.3f}" if isinstance(value, float) and abs(value) < 10 \
                else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
            print(f"  {label:<{width}}  {shown:>12} {unit}")
    print()


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
