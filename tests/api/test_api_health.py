"""/healthz and /readyz: readiness names each dependency and answers 503 when one is down.

A dependency is made unreachable by pointing the app's settings at a closed port on
127.0.0.1; the shared servers are never stopped.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from webhooks_dev.embedded import free_port
from webhooks_worker.maintenance.sweep import sweep


@pytest.fixture
def point_at_closed_port(app, monkeypatch):
    def point(**urls):
        settings = app.config["WEBHOOKS_SETTINGS"]
        monkeypatch.setitem(app.config, "WEBHOOKS_SETTINGS", dataclasses.replace(settings,
                                                                                  **urls))
    return point


def test_healthz_needs_no_dependency(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_names_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"
    assert response.json["dependencies"] == {"database": {"status": "up"},
                                             "broker": {"status": "up"}}


def test_readyz_warns_until_a_sweep_has_finished(app, client, session):
    """Still ready (this process serves), but a deployment whose beat never ran is named;
    a stopped beat: tests/ops/test_beat.py."""
    before = client.get("/readyz")
    assert before.status_code == 200 and before.json["status"] == "ready"
    assert before.json["warnings"]["sweep"].startswith("no sweep has finished yet")

    sweep(session, app.config["WEBHOOKS_SETTINGS"])
    after = client.get("/readyz")
    assert after.status_code == 200 and after.json["warnings"] == {}


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_readyz_is_503_naming_a_broker_that_is_down(client, point_at_closed_port, scheme):
    point_at_closed_port(broker_url=f"{scheme}://127.0.0.1:{free_port()}/")
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["dependencies"]["database"] == {"status": "up"}
    assert response.json["dependencies"]["broker"]["status"] == "down"
    assert response.json["dependencies"]["broker"]["error"]


def test_readyz_is_503_naming_a_database_that_is_down(client, point_at_closed_port):
    point_at_closed_port(database_url=f"postgresql://nobody:hunter2@127.0.0.1:{free_port()}/x")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["dependencies"]["database"]["status"] == "down"
    assert response.json["dependencies"]["broker"] == {"status": "up"}
    assert "hunter2" not in response.get_data(as_text=True)


@pytest.fixture
def app_without_database(app, test_env):
    """A second app whose DATABASE_URL names a closed port; the shared server keeps running."""
    from webhooks_api import create_app
    from webhooks_api.messaging.celery_glue import celery_init_app

    broken = create_app({**test_env,
                         "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/x"})
    yield broken
    celery_init_app(app, app.config["WEBHOOKS_SETTINGS"])  # the shared Celery app back


def test_api_answers_503_in_the_error_shape_when_the_database_is_down(app_without_database):
    client = app_without_database.test_client()
    response = client.get("/api/v1/webhooks/subscriptions",
                          headers={"Authorization": "Bearer whk_anything"})
    assert response.status_code == 503
    assert response.json == {"code": 503, "status": "Service Unavailable",
                             "message": "the database is unavailable; retry later"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json["dependencies"]["database"]["status"] == "down"
