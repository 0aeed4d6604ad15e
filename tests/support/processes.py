"""Real processes of the stack for integration tests: Flower and the gunicorn web server,
started as the Procfile starts them, on free ports of 127.0.0.1, logging to var/."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.helpers import wait_for
from webhooks_dev.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"


def stop_group(process: subprocess.Popen) -> None:
    """Warm-stop a process started in its own group (SIGTERM), then SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def _answers(url: str, **kwargs) -> bool:
    try:
        return requests.get(url, timeout=2, **kwargs).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def running(args: list[str], env: dict[str, str], log_name: str) -> Iterator[subprocess.Popen]:
    VAR.mkdir(exist_ok=True)
    with open(VAR / log_name, "ab") as log:
        process = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


FLOWER_LAUNCHER = (sys.executable, "-m", "webhooks_worker.runtime.flower")  # the Procfile's
FLOWER_CELERY = (sys.executable, "-m", "celery", "-A", "webhooks_worker.celery_app", "flower")


@contextmanager
def flower(env: dict[str, str], command: tuple[str, ...] = FLOWER_LAUNCHER,
           options: tuple[str, ...] = ()) -> Iterator[str]:
    """Flower through our launcher (Procfile `flower`) or another `command` that starts
    it, with Flower `options`; yields its base URL."""
    port = free_port()
    args = [*command, f"--port={port}", "--address=127.0.0.1", *options]
    with _serving(args, env, "test-flower.log", port, "/healthcheck", "Flower") as base:
        yield base


def wait_until_flower_watches_workers(base: str, auth: tuple[str, str]) -> None:
    """Flower shows only events it received: wait for a worker's heartbeat event, which
    proves its event consumer is live (the task list starts empty)."""

    def alive_worker() -> bool:
        answer = requests.get(f"{base}/api/workers", params={"status": 1}, auth=auth,
                              timeout=10)
        return answer.status_code == 200 and any(answer.json().values())

    wait_for(alive_worker, timeout=60, message="Flower to receive a worker's heartbeat")


def procfile_line(name: str) -> str:
    """The command of process `name` in the Procfile, unexpanded."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        process, sep, command = line.partition(":")
        if sep and process.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in the Procfile")


def with_venv_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with the venv's bin first on PATH, where the Procfile's commands are."""
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@contextmanager
def procfile_process(name: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The Procfile's line `name` run by bash as an operator runs it; `exec`: the line's
    process is the server itself, which a SIGTERM stops warmly."""
    with running(["bash", "-c", f"exec {procfile_line(name)}"], with_venv_path(env),
                 f"test-{name}.log") as process:
        yield process


@contextmanager
def web(env: dict[str, str], workers: int | None = 2) -> Iterator[str]:
    """The Procfile's `web` line run by bash, as an operator runs it (the venv's gunicorn
    on PATH), on a free port with `workers` processes (None: the line's default);
    yields its base URL."""
    port = free_port()
    line_env = {**env, "PORT": str(port),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if workers is not None:
        line_env["WEB_CONCURRENCY"] = str(workers)
    # `exec`: the line's process is gunicorn's arbiter itself, which a SIGTERM stops.
    args = ["bash", "-c", f"exec {procfile_line('web')}"]
    with _serving(args, line_env, "test-web.log", port, "/healthz", "gunicorn") as base:
        yield base


@contextmanager
def _serving(args: list[str], env: dict[str, str], log_name: str, port: int, probe: str,
             what: str) -> Iterator[str]:
    """Run a server process until it answers `probe`; yields its base URL."""
    with running(args, env, log_name) as process:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: process.poll() is not None or _answers(f"{base}{probe}"),
                 timeout=60, message=f"{what} to answer {probe}")
        assert process.poll() is None, f"{what} exited; see var/{log_name}"
        yield base
