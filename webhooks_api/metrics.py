"""Prometheus metrics: what is counted where, and the `/metrics` exposition.

- Counters and histograms are recorded where things happen: delivery attempts in the
  worker (`webhooks_worker.runtime.observability`), HTTP requests in the API (`init_app`).
- State gauges (queue depth, open deliveries and their age, subscriptions by status, when
  the last sweep finished) are read from PostgreSQL and the broker when `/metrics` is
  scraped (`StateCollector`).

Several processes: with `PROMETHEUS_MULTIPROC_DIR` set in their environment (read by
prometheus_client itself, at import, so it must be in the environment of the process)
every gunicorn worker and every Celery pool process writes its samples to files in that
directory, and `/metrics` adds up all the files it finds there. Point the web and worker
processes of one machine at the same empty directory and the API's `/metrics` serves the
totals of both; a worker machine of its own serves its totals on
`WEBHOOKS_WORKER_METRICS_PORT`. Dead processes' gauge files are removed by
`mark_process_dead` (gunicorn `child_exit`, Celery `worker_process_shutdown`).

Subscription health is exported as subscriptions by status, those whose last attempt
failed, and circuit breakers by state (open, half_open; read from Redis at scrape time).
"""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from webhooks_api.config import Settings
from webhooks_api.receivers.circuit import Breaker

logger = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = Counter(
    "webhooks_delivery_attempts",
    "Delivery attempts by outcome (success, retrying, failed, disabled) and response "
    "status class (2xx..5xx, or no_response for timeouts and connection errors).",
    ["outcome", "status_class"],
)
ATTEMPT_DURATION = Histogram(
    "webhooks_delivery_attempt_duration_seconds",
    "Wall-clock duration of one delivery attempt (request and capped response read).",
    ["status_class"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PUBLISH_TO_DELIVERY = Histogram(
    "webhooks_publish_to_delivery_seconds",
    "From the event's timestamp (whole seconds) to its successful delivery, retries "
    "included.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 7200, 21600, 43200, 86400),
)
DELIVERIES_DEFERRED = Counter(
    "webhooks_deliveries_deferred",
    "Attempts put off without being made, by reason (circuit open, rate limit, window "
    "full: the subscription's attempts in flight are at its window).",
    ["reason"],
)
WINDOW_UNAVAILABLE = Counter(
    "webhooks_window_unavailable",
    "Attempts that went ahead without the in-flight window because Redis did not answer.",
)
HTTP_REQUESTS = Counter(
    "webhooks_http_requests",
    "API requests by method, route and response status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "webhooks_http_request_duration_seconds",
    "API request duration by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def status_class(status_code: int | None) -> str:
    return "no_response" if status_code is None else f"{status_code // 100}xx"


def record_attempt(outcome: str, status_code: int | None, duration_seconds: float,
                   seconds_since_event: float) -> None:
    """Count one recorded attempt; a success also observes publish-to-delivery latency."""
    status = status_class(status_code)
    DELIVERY_ATTEMPTS.labels(outcome=outcome, status_class=status).inc()
    ATTEMPT_DURATION.labels(status_class=status).observe(duration_seconds)
    if outcome == "success":
        PUBLISH_TO_DELIVERY.observe(max(seconds_since_event, 0.0))


def init_app(app: Flask) -> None:
    """Count every API request by route template (never the raw path: ids would explode
    the label set)."""

    @app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response


class StateCollector(Collector):
    """Gauges read at scrape time; a dependency that does not answer leaves its gauges out
    (and `/readyz` says which one is down)."""

    def __init__(self, session, settings: Settings):
        self.session = session
        self.settings = settings

    def collect(self):
        from webhooks_api.services.stats import broker_state, database_state
        from webhooks_api.services.sweep_record import last_sweep

        try:
            state = database_state(self.session)
            swept = last_sweep(self.session)
        except Exception:
            self.session.rollback()
            logger.warning("metrics: PostgreSQL did not answer", exc_info=True)
        else:
            yield _by_label("webhooks_deliveries_open", "Deliveries expecting an attempt.",
                            "status", state.deliveries_by_status)
            yield GaugeMetricFamily(
                "webhooks_delivery_oldest_due_age_seconds",
                "How late the most overdue open delivery is (0 when none is due).",
                value=state.oldest_due_seconds)
            yield GaugeMetricFamily(
                "webhooks_delivery_oldest_open_age_seconds",
                "Age of the oldest delivery still expecting an attempt.",
                value=state.oldest_open_seconds)
            yield _by_label("webhooks_subscriptions", "Subscriptions by status.", "status",
                            state.subscriptions_by_status)
            yield _by_label("webhooks_subscriptions_failing",
                            "Subscriptions whose last attempt failed, by status.", "status",
                            state.failing_subscriptions_by_status)
            yield GaugeMetricFamily(
                "webhooks_sweep_last_finished_timestamp_seconds",
                "Unix time the last webhooks.sweep finished (0: none yet); beat sends one "
                "every WEBHOOKS_SWEEP_INTERVAL_SECONDS.", value=swept.finished_at or 0)
        try:
            broker = broker_state(self.settings)
        except Exception:
            logger.warning("metrics: the broker did not answer", exc_info=True)
        else:
            yield _by_label("webhooks_queue_messages", "Messages waiting in each queue.",
                            "queue", broker.messages_by_queue)
            yield _by_label("webhooks_circuit_breakers",
                            "Subscriptions whose circuit breaker is open or half-open.",
                            "state", Breaker(self.settings).count_by_state())
            if broker.unacked_messages is not None:
                yield GaugeMetricFamily(
                    "webhooks_broker_unacked_messages",
                    "Redis: messages workers hold unacknowledged (running, or waiting "
                    "for a countdown).", value=broker.unacked_messages)


def _by_label(name: str, documentation: str, label: str, values: dict[str, int]):
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def exposition(session, settings: Settings) -> bytes:
    """The text exposition: every process's samples (all files in the multiprocess
    directory, or this process's registry) followed by the state gauges."""
    if settings.metrics_dir:
        processes = CollectorRegistry()
        MultiProcessCollector(processes, path=settings.metrics_dir)
    else:
        processes = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector(session, settings))
    return generate_latest(processes) + generate_latest(state)
