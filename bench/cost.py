"""Cost per delivery: SQL statements, Redis commands and new connections, counted on the wire.

A second worker — the same Procfile line — runs with its database and broker reached
through the counting proxies (bench/proxies.py) and a broker prefix of its own; the
publisher (`celery.send_task("webhooks.publish")`, as a service without the package would
call it) goes through another Redis proxy, so the worker's and the publisher's commands are
told apart. Counts are taken between the first publish and the last stored attempt.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit, urlunsplit

from bench import stack
from bench.proxies import postgres_proxy, redis_proxy
from bench.stack import SendTask
from bench.workload import make_tenant, publish_burst, wait_attempted


def _via(url: str, port: int, query: str = "") -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username + '@' if parts.username else ''}127.0.0.1:{port}"
    if parts.password:
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query or parts.query, ""))


def _per(counter: Counter, deliveries: int, limit: int = 20) -> dict[str, float]:
    return {what: round(count / deliveries, 3) for what, count in counter.most_common(limit)}


def _measure_shape(bench, publisher: SendTask, proxies: dict, name: str, subscriptions: int,
                   events: int) -> dict:
    tenant = make_tenant(bench.session, bench.settings, name,
                         [bench.receiver.url(f"{name}-{index}") for index in range(subscriptions)])
    deliveries = subscriptions * events
    bench.receiver.reset()
    before = {role: proxy.snapshot() for role, proxy in proxies.items()}
    publish_burst(publisher, tenant, events)
    wait_attempted(bench.session, tenant, deliveries, bench.drain_timeout(deliveries))
    after = {role: proxy.snapshot() for role, proxy in proxies.items()}
    totals = {role: after[role][0] - before[role][0] for role in proxies}
    details = {role: after[role][1] - before[role][1] for role in proxies}
    return {
        "subscriptions": subscriptions, "events": events, "deliveries": deliveries,
        "sql_per_delivery": round(totals["postgres"]["statements"] / deliveries, 2),
        "pg_connections_per_delivery":
            round(totals["postgres"]["connections"] / deliveries, 4),
        "redis_worker_per_delivery":
            round(totals["worker_redis"]["commands"] / deliveries, 2),
        "redis_publisher_per_event":
            round(totals["publisher_redis"]["commands"] / events, 2),
        "receiver_connections": bench.receiver.stats()["connections"],
        "statements": _per(details["postgres"], deliveries),
        "worker_redis_commands": _per(details["worker_redis"], deliveries),
        "publisher_redis_commands": _per(details["publisher_redis"], events),
    }


def cost(bench) -> None:
    database, broker = urlsplit(bench.env["DATABASE_URL"]), urlsplit(
        bench.env["CELERY_BROKER_URL"])
    proxies = {"postgres": postgres_proxy(database.port or 5432),
               "worker_redis": redis_proxy(broker.port or 6379),
               "publisher_redis": redis_proxy(broker.port or 6379)}
    worker_env = {
        "DATABASE_URL": _via(bench.env["DATABASE_URL"], proxies["postgres"].port,
                             "sslmode=disable&gssencmode=disable"),
        "CELERY_BROKER_URL": _via(bench.env["CELERY_BROKER_URL"],
                                  proxies["worker_redis"].port),
    }
    try:
        with stack.worker_of_its_own(
                bench.env, bench.settings.broker_transport_options, "cost",
                worker_env=worker_env,
                publisher_url=_via(bench.env["CELERY_BROKER_URL"],
                                   proxies["publisher_redis"].port)) as (_, worker, publisher):
            events = bench.sizes["cost_events"]
            results = {
                "1sub": _measure_shape(bench, publisher, proxies, "cost1", 1, events),
                "100sub": _measure_shape(bench, publisher, proxies, "cost100", 100,
                                         max(1, events // 100)),
            }
    finally:
        for proxy in proxies.values():
            proxy.stop()
    bench.details["cost"] = {"worker_command": worker.expanded, **results}
    for label, suffix in (("1sub", ""), ("100sub", "_100sub")):
        bench.figures[f"sql_per_delivery{suffix}"] = results[label]["sql_per_delivery"]
        bench.figures[f"redis_per_delivery{suffix}"] = results[label][
            "redis_worker_per_delivery"]
    bench.figures["redis_publish_per_event"] = results["1sub"]["redis_publisher_per_event"]
    bench.figures["pg_connections_per_delivery"] = results["1sub"][
        "pg_connections_per_delivery"]
