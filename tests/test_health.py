"""/healthz and /readyz as a load balancer sees them, with live and dead dependencies."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from webhooks_api import create_app
from webhooks_api.embedded import free_port
from webhooks_api.queue import celery_init_app


@contextmanager
def private_app(app, test_env: dict[str, str], **overrides: str):
    """Another app with some settings changed; the shared Celery app is re-bound to `app`
    afterwards (create_app binds it to the newest app)."""
    try:
        yield create_app({**test_env, **overrides})
    finally:
        celery_init_app(app, app.config["WEBHOOKS_SETTINGS"])


def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_is_ready_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "ready", "dependencies": {
        "database": {"status": "up"}, "broker": {"status": "up"}}}


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_readyz_names_a_dead_broker(app, test_env, scheme):
    dead = f"{scheme}://127.0.0.1:{free_port()}/"
    with private_app(app, test_env, CELERY_BROKER_URL=dead) as other:
        response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["dependencies"]["database"] == {"status": "up"}
    assert response.json["dependencies"]["broker"]["status"] == "down"
    assert response.json["dependencies"]["broker"]["error"]


def test_readyz_names_a_dead_database(app, test_env):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/webhooks"
    with private_app(app, test_env, DATABASE_URL=dead) as other:
        response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["dependencies"]["database"]["status"] == "down"
    assert "OperationalError" in response.json["dependencies"]["database"]["error"]
    assert response.json["dependencies"]["broker"] == {"status": "up"}
