"""celeryconfig.py: every name is a setting Celery 5.7 knows (it ignores unknown names
silently), and the running worker really has the values that make Redis safe."""

from __future__ import annotations

import pytest
from celery.app.defaults import NAMESPACES, flatten

import celeryconfig
from tests.support.doc_checks import procfile_worker
from webhooks_api.config import (
    DEFAULT_RETRY_SCHEDULE,
    MAX_TIMEOUT_SECONDS,
    REDIS_TRANSPORT,
    ConfigError,
    load_settings,
    protections_without_redis,
)
from webhooks_api.messaging.names import BULK_RETRY_TASK, PRUNE_TASK, SWEEP_TASK, WORKER_QUEUES

SETTING_NAMES = [name for name, value in vars(celeryconfig).items()
                 if not name.startswith("_") and name.islower() and not callable(value)
                 and not isinstance(value, type(celeryconfig))]


def test_every_name_in_celeryconfig_is_a_celery_setting():
    known = {name for name, _ in flatten(NAMESPACES)}
    assert len(SETTING_NAMES) >= 15
    assert [name for name in SETTING_NAMES if name not in known] == []


def test_the_visibility_timeout_outlasts_the_longest_countdown():
    settings = load_settings({})
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE == (300, 3600, 21600)
    # Retry-After may double a delay; a request may take the longest timeout on top.
    assert settings.visibility_timeout_seconds > 2 * 21600 + MAX_TIMEOUT_SECONDS
    assert load_settings({"WEBHOOKS_RETRY_SCHEDULE": "60,86400",
                          "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}) \
        .broker_transport_options["visibility_timeout"] > 2 * 86400 + MAX_TIMEOUT_SECONDS


def test_redis_brokers_use_the_transport_that_survives_an_outage():
    """webhooks_api/messaging/redis_transport.py; tests/health/test_faults.py proves the
    outage itself."""
    def transport(url: str) -> str | None:
        return load_settings({"CELERY_BROKER_URL": url}).broker_transport

    assert transport("redis://127.0.0.1:6379/0") == REDIS_TRANSPORT
    assert transport("rediss://127.0.0.1:6380/0") == REDIS_TRANSPORT
    assert transport("amqp://guest:guest@127.0.0.1:5672//") is None
    assert transport("redis+socket:///tmp/redis.sock") is None


def test_the_protections_keep_their_state_in_the_broker_redis_unless_another_is_named():
    """The breaker, the rate limit and the window (docs/HEALTH.md); tests/engine/test_rabbitmq.py
    runs them on RabbitMQ and sees a worker without a Redis refuse."""
    broker, other = "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/5"
    on_redis = load_settings({"CELERY_BROKER_URL": broker})
    assert on_redis.protection_redis_url == broker and protections_without_redis(on_redis) == []
    assert load_settings({"CELERY_BROKER_URL": broker, "WEBHOOKS_REDIS_URL": other}
                         ).protection_redis_url == other
    rabbitmq = {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x"}
    assert load_settings({**rabbitmq, "WEBHOOKS_REDIS_URL": other}).protection_redis_url == other
    assert len(protections_without_redis(load_settings(rabbitmq))) == 2  # breaker off: 0
    assert protections_without_redis(load_settings({
        **rabbitmq, "WEBHOOKS_RATE_LIMIT": "off", "WEBHOOKS_IN_FLIGHT_WINDOW": "off"})) == []
    with pytest.raises(ConfigError, match="WEBHOOKS_REDIS_URL must be a Redis URL"):
        load_settings({**rabbitmq, "WEBHOOKS_REDIS_URL": "amqp://guest:secret@host/"})


def test_the_procfile_worker_takes_its_queues_in_the_order_the_suite_runs():
    """The suite's workers consume `WORKER_QUEUES`; on Redis the order is the priority
    (queue_order_strategy "priority"), so the Procfile's line must name them in that order."""
    assert procfile_worker()["-Q"] == ",".join(WORKER_QUEUES)


def test_the_running_worker_has_the_safe_settings(app, worker, test_env):
    replies = app.extensions["celery"].control.inspect(timeout=5).conf(with_defaults=True)
    assert len(replies) == 1  # the session worker: one process, one node
    for conf in replies.values():
        expected_visibility = load_settings(test_env).visibility_timeout_seconds
        assert conf["broker_transport_options"]["visibility_timeout"] == expected_visibility
        assert conf["task_acks_late"] is True and conf["task_reject_on_worker_lost"] is False
        assert conf["worker_prefetch_multiplier"] == 1
        assert conf["worker_eta_task_limit"] == 10000
        assert conf["task_time_limit"] == MAX_TIMEOUT_SECONDS + 120
        assert conf["task_serializer"] == "json" and conf["accept_content"] == ["json"]
        assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is True
        assert conf["broker_transport"] == load_settings(test_env).broker_transport
        assert set(conf["task_routes"]) == {"webhooks.publish", "webhooks.deliver",
                                            "webhooks.enqueue", SWEEP_TASK, PRUNE_TASK,
                                            BULK_RETRY_TASK}
        # First attempts, publishes and retries on queues of their own, taken in that order
        # on Redis; a large fan-out's enqueue chunks travel with its first attempts.
        assert [queue["name"] for queue in conf["task_queues"]] == [
            "webhooks.deliver", "webhooks.publish", "webhooks.retry", "webhooks.maintenance"]
        assert conf["task_routes"]["webhooks.enqueue"]["queue"] == "webhooks.deliver"
        assert conf["broker_transport_options"]["queue_order_strategy"] == "priority"
        sweep_entry = conf["beat_schedule"]["sweep"]
        assert sweep_entry["task"] == SWEEP_TASK and sweep_entry["options"]["expires"] > 0
