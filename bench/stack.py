"""The stack under test: a fresh database, a broker key prefix, and the Procfile's processes.

The worker and web processes are started from the Procfile's own lines (through bash, so
`${WORKER_CONCURRENCY:-200}` expands as honcho would), with the virtualenv's scripts first
on PATH: whatever pool and concurrency the Procfile chooses is what gets measured. The
worker line is started `WORKER_PROCESSES` times (default: the machine's cores), as the
process manager runs it, each copy a Celery node of its own; a line that is its own
launcher (`python -m webhooks_worker.replicas N ...`) is started once. Together they are
"the worker" of a run. Nothing is left behind on the shared servers: the benchmark's broker
keys are deleted by prefix and its database is dropped at the end (unless kept for
inspection).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import redis
from celery import Celery

from webhooks_api.messaging.names import PUBLISH_TASK
from webhooks_dev.embedded import ensure_database, free_port, reachable, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROCFILE = ROOT / "Procfile"
# A worker line that starts its own replicas: the process manager runs it once.
LAUNCHER = "webhooks_worker.replicas"
# Overrides the Procfile's worker line, for experiments (`--worker-command`).
WORKER_COMMAND_ENV = "BENCH_WORKER_COMMAND"


def procfile_line(name: str) -> str:
    """The command of process `name` in the Procfile, unexpanded."""
    for line in PROCFILE.read_text().splitlines():
        process, sep, command = line.partition(":")
        if sep and process.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in {PROCFILE}")


def worker_line(env: Mapping[str, str]) -> str:
    """The worker command of this run: the Procfile's, unless the run (or the caller's
    environment) overrides it."""
    return (env.get(WORKER_COMMAND_ENV) or os.environ.get(WORKER_COMMAND_ENV)
            or procfile_line("worker"))


def expand(command: str, env: Mapping[str, str]) -> str:
    """`${NAME:-default}` and `$NAME` as the shell would expand them, for the record."""
    def substitute(match: re.Match) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        return env.get(name) or (default or "")
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", substitute, command)


def wait_until(condition: Callable[[], object], timeout: float, message: str,
               interval: float = 0.1):
    """Poll `condition` until it is truthy; fail loudly after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


def bench_env(database_server: str, broker_url: str) -> dict[str, str]:
    """Settings of every process of one benchmark run (fresh database, own key prefix)."""
    run_tag = uuid.uuid4().hex[:8]
    database_url = ensure_database(database_server, f"webhooks_bench_{run_tag}", fresh=True)
    return {
        "WEBHOOKS_ENV": "development",  # private (127.0.0.1) targets allowed, plain HTTP
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "WEBHOOKS_BROKER_KEY_PREFIX": f"bench-{run_tag}:",
    }


def default_servers() -> tuple[str, str]:
    """The machine's PostgreSQL and Redis unless DATABASE_URL / CELERY_BROKER_URL say else."""
    database = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    for url, port in ((database, 5432), (broker, 6379)):
        if "127.0.0.1" in url and not reachable("127.0.0.1", port):
            raise SystemExit(f"nothing listens on 127.0.0.1:{port} (for {url}); set "
                             "DATABASE_URL / CELERY_BROKER_URL")
    return database, broker


def drop_database(database_url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    from webhooks_dev.embedded import with_database

    name = database_url.split("?")[0].rsplit("/", 1)[1]
    connection = psycopg2.connect(with_database(database_url, "postgres"))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                           .format(sql.Identifier(name)))
    finally:
        connection.close()


def delete_broker_keys(broker_url: str, prefix: str) -> int:
    """Delete every key under `prefix` (this run's only; never a flush of the shared Redis)."""
    client = redis.Redis.from_url(broker_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    client.close()
    return len(keys)


def _process_env(env: Mapping[str, str]) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    return {**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def migrate(env: Mapping[str, str]) -> None:
    """The Procfile's `release` step on the benchmark database."""
    subprocess.run(["bash", "-c", procfile_line("release")], env=_process_env(env), cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)


class ProcfileProcess:
    """One Procfile process (`worker`, `web`) started exactly as its line says."""

    def __init__(self, name: str, env: Mapping[str, str], log_name: str | None = None,
                 extra_args: str = "", command: str | None = None):
        self.name = name
        self.env = _process_env(env)
        self.command = f"{command or procfile_line(name)} {extra_args}".strip()
        self.expanded = expand(self.command, self.env)
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS / f"{log_name or name}.log"
        # `exec` keeps the pid: it is the process itself (celery's main process, gunicorn's
        # arbiter), whose children are the pool.
        with open(self.log_path, "wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"], env=self.env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The process and its descendants (the prefork pool's children)."""
        found, pending = [], [self.pid]
        while pending:
            pid = pending.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            pending.extend(int(child) for child in children)
        return found

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of the process tree: total, the main process and the largest child."""
        sizes = {pid: _rss_kb(pid) for pid in self.pids()}
        children = [size for pid, size in sizes.items() if pid != self.pid]
        return {"total": round(sum(sizes.values()) / 1024, 1),
                "main": round(sizes.get(self.pid, 0) / 1024, 1),
                "largest_child": round(max(children, default=0) / 1024, 1),
                "processes": len(sizes)}

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds used so far: the main process and its (live) children."""
        ticks = {pid: _cpu_ticks(pid) for pid in self.pids()}
        per_second = os.sysconf("SC_CLK_TCK")
        main = ticks.pop(self.pid, 0)
        return {"main": main / per_second, "children": sum(ticks.values()) / per_second}

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the process group if it lingers."""
        self.terminate()
        self.wait_or_kill(time.monotonic() + timeout)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the exit until `deadline`, then SIGKILL the process group."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class WorkerProcesses:
    """The worker line started once per process the process manager would run (see the
    module docstring), each copy with a node name of its own so that Celery (pings, Flower,
    mingle) tells them apart; measured and stopped as one worker."""

    def __init__(self, env: Mapping[str, str], log_name: str = "worker",
                 extra_args: str = "", command: str | None = None):
        command = command or worker_line(env)
        full_env = _process_env(env)
        self.expanded = expand(f"{command} {extra_args}".strip(), full_env)
        count = worker_copies(command, full_env)
        self.copies = [
            ProcfileProcess("worker", env, log_name if count == 1 else f"{log_name}-{number}",
                            extra_args if LAUNCHER in command  # it names its replicas
                            else f"{extra_args} {_node_name(env, number)}", command=command)
            for number in range(1, count + 1)]

    @property
    def pid(self) -> int:
        """The first copy's main process."""
        return self.copies[0].pid

    @property
    def main_pids(self) -> list[int]:
        return [copy.pid for copy in self.copies]

    @property
    def log_paths(self) -> list[Path]:
        return [copy.log_path for copy in self.copies]

    def pool(self) -> dict:
        return worker_pool(self.expanded, len(self.copies))

    def exited(self) -> list[Path]:
        """The logs of the copies that are no longer running."""
        return [copy.log_path for copy in self.copies if copy.process.poll() is not None]

    def pids(self) -> list[int]:
        return [pid for copy in self.copies for pid in copy.pids()]

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of every copy's tree: the total, the copies' main processes
        together, the largest child of any copy."""
        parts = [copy.rss_mb() for copy in self.copies]
        return {"total": round(sum(part["total"] for part in parts), 1),
                "main": round(sum(part["main"] for part in parts), 1),
                "largest_child": max(part["largest_child"] for part in parts),
                "processes": sum(part["processes"] for part in parts)}

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of the copies' main processes and of their children."""
        parts = [copy.cpu_seconds() for copy in self.copies]
        return {role: sum(part[role] for part in parts) for role in ("main", "children")}

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown of every copy at once, then SIGKILL of any that lingers."""
        for copy in self.copies:
            copy.terminate()
        deadline = time.monotonic() + timeout
        for copy in self.copies:
            copy.wait_or_kill(deadline)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_cpu_seconds() -> float:
    """CPU seconds every process of the machine has used (/proc/stat: all but idle and
    iowait): the worker, PostgreSQL, Redis, the receiver and this process share 2 cores."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def start_worker(env: Mapping[str, str], celery_app, log_name: str = "worker",
                 extra_args: str = "", timeout: float = 120) -> WorkerProcesses:
    """The worker, waited for until every one of its Celery nodes answers a ping on this
    run's prefix (a copy still starting would otherwise miss the first messages)."""
    worker = WorkerProcesses(env, log_name, extra_args)
    nodes = worker.pool()["processes"]

    def answered():
        if exited := worker.exited():
            worker.stop()
            raise RuntimeError(f"the worker exited; see {', '.join(map(str, exited))}")
        replies = celery_app.control.ping(timeout=0.5)
        return len({name for reply in replies for name in reply}) >= nodes

    try:
        wait_until(answered, timeout, f"{nodes} worker nodes to answer a ping")
    except TimeoutError:
        worker.stop()
        raise
    return worker


def start_web(env: Mapping[str, str], timeout: float = 60) -> tuple[ProcfileProcess, str]:
    """The Procfile's web process (gunicorn) on a free port; returns it and its base URL."""
    port = free_port()
    web = ProcfileProcess("web", {**env, "PORT": str(port)})
    wait_for_port(port, timeout)
    return web, f"http://127.0.0.1:{port}"


def _node_name(env: Mapping[str, str], number: int) -> str:
    """`-n bench<number>-<prefix>@%h`: distinct per copy, and per run on a shared broker."""
    tag = re.sub(r"[^A-Za-z0-9]+", "-", env.get("WEBHOOKS_BROKER_KEY_PREFIX", "")).strip("-")
    return f"-n bench{number}-{tag}@%h"


def worker_copies(command: str, env: Mapping[str, str]) -> int:
    """How many times the process manager starts the line: WORKER_PROCESSES, by default
    one per core; once for a launcher, which starts its replicas itself."""
    if LAUNCHER in command:
        return 1
    return int(env.get("WORKER_PROCESSES") or os.cpu_count() or 1)


def worker_pool(command: str, copies: int = 1) -> dict:
    """The pool of an expanded worker command run `copies` times: deliveries at once per
    process (`--concurrency`, Celery's default of one per core, 1 for solo), the Celery
    processes (copies, or the replicas a launcher starts) and the slots of them all."""
    pool_match = re.search(r"(?:--pool[= ]|-P ?)(\w+)", command)
    pool = pool_match.group(1) if pool_match else "prefork"
    concurrency = re.search(r"(?:--concurrency[= ]|-c ?)(\d+)", command)
    per_process = 1 if pool == "solo" else (
        int(concurrency.group(1)) if concurrency else os.cpu_count() or 1)
    replicas = re.search(re.escape(LAUNCHER) + r" (\d+)", command)
    processes = copies * (int(replicas.group(1)) if replicas else 1)
    return {"pool": pool, "concurrency": per_process, "processes": processes,
            "slots": per_process * processes}


class SendTask:
    """`publish.delay(...)` spelled as `send_task`, over a connection of the publisher's own
    (CELERY_BROKER_URL in the environment would override the app's `broker_url`)."""

    def __init__(self, app: Celery, broker_url: str):
        self.app = app
        self.connection = app.connection_for_write(broker_url)

    def delay(self, *args, **kwargs) -> None:
        self.app.send_task(PUBLISH_TASK, args=args, kwargs=kwargs,
                           connection=self.connection)

    def close(self) -> None:
        self.connection.release()


@contextmanager
def worker_of_its_own(env: Mapping[str, str], transport_options: dict, name: str, *,
                      worker_env: Mapping[str, str] | None = None,
                      publisher_url: str | None = None
                      ) -> Iterator[tuple[Celery, WorkerProcesses, SendTask]]:
    """A second worker (the Procfile's line) on a broker prefix of its own, with settings or
    routes the run's worker does not have (`worker_env` over `env`); the Celery app of that
    prefix (its events, its queues) and a publisher to it (through `publisher_url`, else the
    broker). Its broker keys are deleted afterwards."""
    prefix = f"{env['WEBHOOKS_BROKER_KEY_PREFIX']}{name}-"
    app = Celery(f"bench-{name}")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_transport_options={**transport_options, "global_keyprefix": prefix})
    publisher = SendTask(app, publisher_url or env["CELERY_BROKER_URL"])
    worker = start_worker({**env, **(worker_env or {}), "WEBHOOKS_BROKER_KEY_PREFIX": prefix},
                          app, log_name=f"worker-{name}")
    try:
        yield app, worker, publisher
    finally:
        worker.stop()
        publisher.close()
        app.close()
        delete_broker_keys(env["CELERY_BROKER_URL"], prefix)
