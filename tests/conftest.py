"""Test fixtures on real servers: PostgreSQL, Redis, a Celery worker process and an HTTP
receiver on 127.0.0.1.

Servers are found in this order: DATABASE_URL / CELERY_BROKER_URL from the environment,
then the standard ports on 127.0.0.1, then embedded ones started here. A missing server
fails the run; nothing is skipped. The schema is built by running the migrations on a
fresh database. Tests with a worker commit for real, so every table is emptied after each
test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.support.helpers import wait_for
from tests.support.receiver import Receiver
from tests.support.tls_support import tls_receiver  # noqa: F401  (a fixture for every module)
from webhooks_api import create_app
from webhooks_api.extensions import db
from webhooks_api.messaging.names import WORKER_QUEUES
from webhooks_dev.embedded import RedisServer, ensure_database, reachable, start_postgres

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
TABLES = ("delivery_attempts, deliveries, events, event_types, subscriptions, api_keys, tenants, "
          "maintenance_runs")
# Short retry schedule for the real retry path; the default one is asserted separately.
TEST_RETRY_SCHEDULE = "1,1,1"
# Deliveries in flight in a test worker process (the Procfile's default is 200).
WORKER_CONCURRENCY = 50


def _database_server() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    return start_postgres(VAR / "test-pgdata")


@pytest.fixture(scope="session")
def broker_url():
    if os.environ.get("CELERY_BROKER_URL"):
        yield os.environ["CELERY_BROKER_URL"]
    elif reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
    else:
        server = RedisServer(VAR / "test-redis", persistent=False).start()
        yield server.url
        server.stop()


@pytest.fixture(scope="session")
def test_env(broker_url) -> dict[str, str]:
    """The environment of every process of this test run (app, CLI, worker)."""
    run_tag = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
    database_url = ensure_database(_database_server(), f"webhooks_test_{run_tag}", fresh=True)
    return {
        "WEBHOOKS_ENV": "test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "WEBHOOKS_BROKER_KEY_PREFIX": f"test-{run_tag}-{uuid.uuid4().hex[:8]}:",
        "WEBHOOKS_RETRY_SCHEDULE": TEST_RETRY_SCHEDULE,
        "WEBHOOKS_SWEEP_MARGIN_SECONDS": "2",
        "WEBHOOKS_CLAIM_MARGIN_SECONDS": "2",
    }


@pytest.fixture(scope="session")
def app(test_env):
    from flask_migrate import upgrade

    app = create_app(test_env)
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Empty the tables after every test that touched the test database, through the app
    or through processes started with the run's settings (a row left behind is counted
    by the next test)."""
    yield
    if {"app", "test_env"} & set(request.fixturenames):
        truncate_all(request.getfixturevalue("app"))


def truncate_all(app, attempts: int = 5) -> None:
    """Empty every table. The session's worker may still be fanning out a message of the
    test that just ended; PostgreSQL then picks the TRUNCATE as a deadlock victim, and it
    is simply run again."""
    with app.app_context():
        for attempt in range(attempts):
            try:
                db.session.execute(text(f"TRUNCATE {TABLES} CASCADE"))
                db.session.commit()
                return
            except OperationalError as error:
                db.session.rollback()
                if attempt == attempts - 1 or "deadlock detected" not in str(error):
                    raise


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session


def start_worker_process(test_env: dict[str, str], extra_env: dict[str, str] | None = None,
                         concurrency: int = WORKER_CONCURRENCY, log_path: Path | None = None,
                         extra_args: list[str] | None = None,
                         wrapper: list[str] | None = None) -> subprocess.Popen:
    """A real Celery worker as the Procfile starts it (the gevent pool, `concurrency`
    deliveries in flight), on this run's queues.

    It leads a process group of its own (so a test can kill it with anything it started);
    `wrapper` is a command line it runs under (e.g. a private mount namespace).
    """
    env = {**os.environ, **test_env, **(extra_env or {})}
    log_path = log_path or VAR / "test-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [*(wrapper or []), sys.executable, "-m", "celery", "-A", "webhooks_worker.celery_app",
         "worker", "--pool=gevent", f"--concurrency={concurrency}", "--loglevel=INFO",
         "--without-gossip", "--without-mingle",
         "-Q", ",".join(WORKER_QUEUES),
         "-n", f"test-{uuid.uuid4().hex[:6]}@{socket.gethostname()}", *(extra_args or [])],
        env=env, cwd=ROOT, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def node_name(worker: subprocess.Popen) -> str:
    """The Celery node name a worker of `start_worker_process` answers as."""
    return worker.args[worker.args.index("-n") + 1]


def answers_ping(client: Celery, worker: subprocess.Popen) -> bool:
    """Whether `worker` answers a ping. Asked by its name, its reply ends the wait (a
    broadcast ping waits its whole timeout for other nodes). A connection the broker
    dropped (it was just restarted) is a "not yet"."""
    try:
        return bool(client.control.ping(destination=[node_name(worker)], timeout=0.5))
    except (OSError, redis.RedisError):
        return False


@contextlib.contextmanager
def beat_process(env: dict[str, str], directory: Path, log_path: Path,
                 procfile: Path = ROOT / "Procfile",
                 wrapper: list[str] | None = None) -> Iterator[subprocess.Popen]:
    """Celery beat as an operator starts it: the Procfile's `beat` line under honcho (the
    gevent pool cannot embed beat with `-B`), run from `directory` (a folder without var/);
    the sweep every WEBHOOKS_SWEEP_INTERVAL_SECONDS of `env`. `wrapper` is a command line
    it runs under (e.g. a private mount namespace). Yields honcho's process."""
    bin_dir = Path(sys.executable).parent  # where the Procfile's `celery` is installed
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*(wrapper or []), str(bin_dir / "honcho"), "-f", str(procfile),
             "-d", str(directory), "--no-colour", "start", "beat"],
            env={**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        from tests.support.processes import stop_group

        stop_group(process)


@pytest.fixture(scope="session")
def worker(app, test_env):
    process = start_worker_process(test_env)
    try:
        wait_for(lambda: answers_ping(app.extensions["celery"], process), timeout=60,
                 message="the worker to answer a ping")
        yield process
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="session")
def _receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(_receiver):
    _receiver.reset()
    return _receiver


def create_tenant_with_key(runner) -> dict:
    """A tenant and an API key made with the CLI, as an operator would."""
    tenant_id = f"tenant_{uuid.uuid4().hex[:8]}"
    result = runner.invoke(args=["tenants", "create", tenant_id, "--name", "Test tenant"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["api-keys", "create", tenant_id])
    assert result.exit_code == 0, result.output
    api_key = result.stdout.strip().splitlines()[-1]
    return {"id": tenant_id, "api_key": api_key,
            "headers": {"Authorization": f"Bearer {api_key}"}}


@pytest.fixture(scope="session")
def task_events(app, worker):
    """Task events of the session worker, to wait until a message was fully handled."""
    from tests.support.engine_support import TaskEvents

    events = TaskEvents(app.extensions["celery"]).start()
    yield events
    events.stop()


@pytest.fixture
def tenant(runner):
    return create_tenant_with_key(runner)


@pytest.fixture
def other_tenant(runner):
    """A second tenant, for isolation tests."""
    return create_tenant_with_key(runner)
