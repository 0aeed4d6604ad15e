"""The README's run command on a machine with no PostgreSQL or Redis configured: the
embedded servers start, the Procfile's processes serve a real delivery, Ctrl-C stops
everything, and the data survives a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import wait_for
from webhooks_api.embedded import free_port, reachable

ROOT = Path(__file__).resolve().parent.parent


def _start_stack(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "webhooks_api.stack"], env=env, cwd=ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop_with_ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    process.wait(90)


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_run_command_embedded_stack(tmp_path, receiver):
    port, flower_port, redis_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(PORT=str(port), FLOWER_PORT=str(flower_port), REDIS_PORT=str(redis_port),
               WEBHOOKS_DATA_DIR=str(tmp_path / "data"), WEB_CONCURRENCY="1",
               WORKER_CONCURRENCY="1")
    log = tmp_path / "stack.log"
    stack = _start_stack(env, log)
    try:
        wait_for(lambda: _up(port), timeout=180, interval=0.5, message="the API to come up")
        output = log.read_text()
        database_url = re.search(r"DATABASE_URL='([^']+)'", output).group(1)
        assert f"http://127.0.0.1:{flower_port}" in output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert f"http://127.0.0.1:{port}/console" in output
        cli_env = {**env, "DATABASE_URL": database_url}
        flask = [sys.executable, "-m", "flask", "--app", "webhooks_api"]
        subprocess.run([*flask, "tenants", "create", "acme"], env=cli_env, check=True)
        created = subprocess.run([*flask, "api-keys", "create", "acme"], env=cli_env,
                                 check=True, capture_output=True, text=True)
        headers = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
        api = f"http://127.0.0.1:{port}/api/v1/webhooks"
        subscription = requests.post(f"{api}/subscriptions", headers=headers, timeout=10, json={
            "url": receiver.url, "event_types": ["*"]}).json()
        published = requests.post(f"{api}/publish", headers=headers, timeout=10, json={
            "event_type": "user.registered", "data": {"user_id": "u1"}})
        assert published.status_code == 202
        wait_for(lambda: receiver.requests, timeout=60, message="the delivery")
        wait_for(lambda: reachable("127.0.0.1", flower_port), timeout=30, message="Flower")
    finally:
        _stop_with_ctrl_c(stack)
    assert not reachable("127.0.0.1", port) and not reachable("127.0.0.1", redis_port)
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()  # PostgreSQL stopped

    stack = _start_stack(env, log)
    try:
        wait_for(lambda: _up(port), timeout=180, interval=0.5, message="the API to restart")
        again = requests.get(f"{api}/subscriptions/{subscription['id']}", headers=headers,
                             timeout=10)
        assert again.status_code == 200 and again.json()["url"] == receiver.url
    finally:
        _stop_with_ctrl_c(stack)
