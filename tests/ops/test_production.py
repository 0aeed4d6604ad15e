"""docs/production.md's checklist, run: web, worker, beat and Flower started from the
Procfile's lines with `WEBHOOKS_ENV=production` and the checklist's settings (its dotenv
block) come up ready, serve an authenticated API call, keep Flower behind basic auth, and
store and fan out a published event."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.support import processes
from tests.support.engine_support import new_prefix
from tests.support.helpers import wait_for
from webhooks_api import create_app
from webhooks_api.domain.models import Delivery, Event
from webhooks_api.extensions import db
from webhooks_api.services.subscriptions import create_subscription
from webhooks_api.services.tenants import create_api_key, create_tenant
from webhooks_dev.embedded import free_port

PRODUCTION_MD = Path(__file__).resolve().parents[2] / "docs" / "production.md"
FLOWER_AUTH = ("ops", "flower-prod-pass-1")


def checklist_settings() -> dict[str, str]:
    """The `NAME=value` lines of production.md's dotenv block (comments left out)."""
    block = re.search(r"```dotenv\n(.*?)```", PRODUCTION_MD.read_text(), re.DOTALL).group(1)
    return dict(line.split("=", 1) for line in block.splitlines()
                if line.strip() and not line.startswith("#"))


def production_env(test_env: dict[str, str]) -> dict[str, str]:
    """The checklist's settings, its placeholders filled in for this machine."""
    settings = checklist_settings()
    filled = {"DATABASE_URL": test_env["DATABASE_URL"],
              "CELERY_BROKER_URL": test_env["CELERY_BROKER_URL"],
              "WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
              "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH), "BIND_ADDRESS": "127.0.0.1"}
    assert sorted(filled) == sorted(name for name, value in settings.items() if "<" in value)
    assert settings["WEBHOOKS_ENV"] == "production"
    return {**settings, **filled, "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env),
            "WEB_CONCURRENCY": "1", "WORKER_CONCURRENCY": "10"}


def _ready_without_warnings(base: str) -> bool:
    answer = requests.get(f"{base}/readyz", timeout=5).json()
    return answer["status"] == "ready" and answer["warnings"] == {}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_production_stack_from_the_procfile(test_env):
    env = production_env(test_env)
    release = subprocess.run(["bash", "-c", processes.procfile_line("release")],
                             env=processes.with_venv_path({**os.environ, **env}),
                             cwd=processes.ROOT, capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stderr

    app = create_app(env)
    settings = app.config["WEBHOOKS_SETTINGS"]
    with app.app_context():
        create_tenant(db.session, "acme-prod")
        api_key = create_api_key(db.session, "acme-prod").api_key
        # Production refuses loopback targets through the API; the row is written directly.
        subscription = create_subscription(
            db.session, dataclasses.replace(settings, allow_private_targets=True),
            "acme-prod", url="https://127.0.0.1:9/hooks", event_types=["invoice.*"]).id

    flower_port = free_port()
    with processes.procfile_process("worker", env), processes.procfile_process("beat", env), \
            processes.web(env, workers=None) as api, \
            processes.procfile_process("flower", {**env, "FLOWER_PORT": str(flower_port)}):
        # Ready, and beat's first sweep run by the worker (else /readyz warns `sweep`).
        wait_for(lambda: _ready_without_warnings(api), timeout=60,
                 message="/readyz ready without warnings")
        headers = {"Authorization": f"Bearer {api_key}"}
        listed = requests.get(f"{api}/api/v1/webhooks/subscriptions", headers=headers,
                              timeout=10)
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [subscription]

        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(lambda: _answers(f"{flower}/healthcheck"), timeout=60, message="Flower")
        assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401
        assert requests.get(f"{flower}/api/workers", auth=("ops", "wrong"),
                            timeout=10).status_code == 401
        assert requests.get(f"{flower}/api/workers", auth=FLOWER_AUTH,
                            timeout=10).status_code == 200

        published = requests.post(f"{api}/api/v1/webhooks/publish", headers=headers, timeout=10,
                                  json={"event_type": "invoice.created", "data": {"n": 1}})
        assert published.status_code == 202, published.text
        event_id = published.json()["event_id"]
        with app.app_context():
            def fanned_out():
                db.session.expire_all()
                event = db.session.scalar(select(Event).where(Event.event_id == event_id))
                return event and db.session.scalar(
                    select(Delivery).where(Delivery.event_pk == event.id))
            delivery = wait_for(fanned_out, timeout=30, message="the event's delivery row")
            assert delivery.subscription_id == subscription
