"""What the worker tells operators: the per-attempt log line and metrics, its log format,
and warnings about a broker that can lose messages.

- `attempt_finished` is the one call the delivery path makes after each attempt: one log
  line with tenant, subscription, event and delivery ids, attempt number, status and
  duration as structured fields (never a secret, a URL's path or query, or the payload),
  and the attempt's counters and histograms (webhooks_api.metrics).
- Celery signals: logging through webhooks_api.logging_setup (JSON when configured)
  instead of Celery's own root handler; at start-up a warning when Redis keeps nothing on
  disk or may evict keys (a broker that loses messages loses countdowns and
  `publish.delay()` calls); metrics files of exited pool processes cleaned up; an optional
  metrics endpoint for worker machines that do not share the API's metrics directory.
"""

from __future__ import annotations

import logging
import os
import time

from celery.signals import setup_logging, worker_process_shutdown, worker_ready

from webhooks_api import metrics
from webhooks_api.config import Settings, load_settings
from webhooks_api.domain.urls import target_host
from webhooks_api.logging_setup import configure_logging

logger = logging.getLogger(__name__)


def attempt_finished(claim, delivery_id: str, attempt_number: int, trigger: str, result,
                     outcome) -> None:
    """Log and count one attempt (`claim` is the claimed row, `result` the HttpResult,
    `outcome` None when another worker had already recorded this attempt)."""
    recorded = outcome is not None
    status = outcome.status if recorded else "not recorded (another worker recorded it)"
    fields = {
        "tenant_id": claim.tenant_id, "subscription_id": claim.subscription_id,
        "event_id": claim.event_id, "event_type": claim.event_type,
        "delivery_id": delivery_id, "attempt_number": attempt_number, "trigger": trigger,
        "target_host": target_host(claim.url), "status_code": result.status_code,
        "error_class": result.error_class, "duration_ms": result.duration_ms,
        "outcome": status, "recorded": recorded,
    }
    logger.info(
        "delivery %s attempt %s: tenant=%s subscription=%s event=%s trigger=%s status=%s "
        "error=%s duration_ms=%s outcome=%s",
        delivery_id, attempt_number, claim.tenant_id, claim.subscription_id, claim.event_id,
        trigger, result.status_code, result.error_class, result.duration_ms, status,
        extra=fields,
    )
    if recorded:
        metrics.record_attempt(outcome.status, result.status_code, result.duration_ms / 1000,
                               time.time() - claim.occurred_at.timestamp())


def redis_durability_warnings(config: dict[str, str]) -> list[str]:
    """What in a Redis CONFIG GET answer can lose broker messages (empty when safe)."""
    warnings = []
    if config.get("appendonly") != "yes":
        if config.get("save"):
            warnings.append(
                "Redis persists only snapshots (appendonly no): a crash loses the messages "
                "queued since the last one; set appendonly yes")
        else:
            warnings.append(
                "Redis is not persistent (appendonly no, no snapshots): a restart loses "
                "every queued message and countdown; set appendonly yes")
    policy = config.get("maxmemory-policy")
    if policy != "noeviction":
        warnings.append(
            f"Redis may evict keys (maxmemory-policy {policy}): queued messages and kombu's "
            "bindings can vanish; set maxmemory-policy noeviction")
    return warnings


def check_broker_durability(app, settings: Settings) -> None:
    if not settings.broker_is_redis:
        return
    try:
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            config = {**client.config_get("appendonly"), **client.config_get("save"),
                      **client.config_get("maxmemory-policy")}
    except Exception as error:  # managed Redis often disables CONFIG
        logger.warning("could not read the Redis configuration to check persistence and "
                       "eviction (%s); make sure appendonly is yes and maxmemory-policy is "
                       "noeviction", error)
        return
    for warning in redis_durability_warnings(config):
        logger.warning("broker durability: %s", warning)


def serve_worker_metrics(settings: Settings) -> None:
    """This node's metrics (all its pool processes) on WEBHOOKS_WORKER_METRICS_PORT."""
    if settings.worker_metrics_port is None:
        return
    if not settings.metrics_dir:
        logger.warning("WEBHOOKS_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: pool "
                       "processes cannot report otherwise; not serving metrics")
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=settings.metrics_dir)
    start_http_server(settings.worker_metrics_port, registry=registry)
    logger.info("worker metrics on port %s", settings.worker_metrics_port)


@setup_logging.connect
def _use_our_logging(loglevel=None, **_) -> None:
    """Connected, so Celery leaves the root logger to us (JSON lines when configured)."""
    configure_logging(load_settings(), loglevel or None)


@worker_ready.connect
def _on_worker_ready(sender=None, **_) -> None:
    settings = load_settings()
    check_broker_durability(sender.app, settings)
    serve_worker_metrics(settings)


@worker_process_shutdown.connect
def _forget_process_metrics(**_) -> None:
    if load_settings().metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
