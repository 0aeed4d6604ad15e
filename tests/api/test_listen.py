"""`flask --app webhooks_api listen`: a local receiver subscribed for a tenant, for
development only, whose subscription goes away with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.support.helpers import wait_for
from webhooks_api.domain.models import Subscription

ROOT = Path(__file__).resolve().parents[2]


def _listen(tenant_id: str, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "webhooks_api", "listen", tenant_id,
         "--event-types", "invoice.*,customer.created"],
        env={**os.environ, **env}, cwd=ROOT, **popen)


def test_listen_is_refused_in_production(test_env, tenant, session):
    production = {**test_env, "WEBHOOKS_ENV": "production",
                  "WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    listener = _listen(tenant["id"], production, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 1, stdout + stderr
    assert "listen is for development only (WEBHOOKS_ENV=production)" in stderr
    assert "Ready" not in stdout
    assert session.scalars(select(Subscription)).all() == []


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_listen_deletes_its_subscription_when_stopped(test_env, tenant, session, tmp_path,
                                                       stop_signal):
    log = tmp_path / "listen.log"
    with open(log, "wb") as output:
        listener = _listen(tenant["id"], test_env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ready" in log.read_text(), timeout=60, message="the listener")
        live = session.scalars(select(Subscription)).one()
        assert live.tenant_id == tenant["id"] and live.deleted_at is None
        assert live.event_types == ["invoice.*", "customer.created"]
        assert live.url.startswith("http://127.0.0.1:") and live.url in log.read_text()
        # A request that is not signed with the subscription's secret is refused, and said.
        forged = requests.post(live.url, data=b'{"type": "invoice.created"}', timeout=10,
                               headers={"webhook-id": "evt_x", "webhook-timestamp": "1",
                                        "webhook-signature": "v1,AAAA"})
        assert forged.status_code == 400
        wait_for(lambda: "signature not verified" in log.read_text(), timeout=10,
                 message="the refusal to be shown")
        listener.send_signal(stop_signal)
        assert listener.wait(30) == 0, log.read_text()
    finally:
        if listener.poll() is None:
            listener.kill()
    session.expire_all()
    assert session.get(Subscription, live.id).deleted_at is not None
    assert f"deleted subscription {live.id}" in log.read_text()


def test_listen_for_an_unknown_tenant_fails_clearly(runner, session):
    result = runner.invoke(args=["listen", "ghost"])
    assert result.exit_code == 1 and "tenant ghost does not exist" in result.stderr
    assert session.scalars(select(Subscription)).all() == []
