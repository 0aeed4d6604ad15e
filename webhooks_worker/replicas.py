"""`python -m webhooks_worker.replicas N celery -A webhooks_worker.celery_app worker ...`:
N copies of one worker command, each a Celery node of its own, kept running as one process.

Why not prefork: a prefork worker has one main process that fetches every message from
Redis, sends the task to a pool child over a pipe, reads the result back, acks and emits
the task events; on the 2-core machine it saturated at ~570 no-op tasks/s while its four
children idled. N `--pool=solo` workers each fetch, run and ack their own messages: the same
no-op tasks ran at ~1,400/s, and deliveries end to end went up by a third
(docs/PERFORMANCE.md "Pool"). Each replica runs one task at a time, as a prefork child
did; a receiver slower than WEBHOOKS_SLOW_RECEIVER_MS finishes on one of the replica's slow
lanes (webhooks_worker.slow_lane), so endpoints that hang do not hold the replicas.

Why a launcher: a Procfile line is one process that the platform (honcho, Heroku, systemd)
starts, stops and restarts as one. This process is that one: SIGTERM, SIGINT or SIGQUIT is
passed to every replica (Celery's warm or cold shutdown) and it exits once they all have.
Each replica gets its own node name (`-n worker3@host`, or the `-n` given with the number
added), so Flower and `celery inspect` see N workers. A replica that dies after it started
(killed, out of memory) is started again, as prefork replaces a lost child; one that fails
within its first `STARTUP_SECONDS` (a configuration error) stops them all and the launcher
exits with its status, so the failure is seen instead of retried forever. A replica that
exits 0 on its own (`celery control shutdown`) is not restarted.

Once-per-machine duties stay single: an embedded beat (`-B`) runs in replica 1 only, and
the worker metrics endpoint (WEBHOOKS_WORKER_METRICS_PORT) is served here, adding up every
replica's files in PROMETHEUS_MULTIPROC_DIR; a replica's files are marked dead when it exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time

logger = logging.getLogger("webhooks_worker.replicas")

STARTUP_SECONDS = 10.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_NAME_OPTIONS = ("-n", "--hostname")
_BEAT_OPTIONS = ("-B", "--beat")
_METRICS_PORT = "WEBHOOKS_WORKER_METRICS_PORT"


def replica_command(command: list[str], number: int) -> list[str]:
    """The command with a node name of its own: `-n NAME@HOST` becomes `NAME<number>@HOST`;
    without one, `-n worker<number>@%h`. Only replica 1 keeps `-B`."""
    command = [argument for argument in command
               if number == 1 or argument not in _BEAT_OPTIONS]
    for index, argument in enumerate(command):
        if argument in _NAME_OPTIONS and index + 1 < len(command):
            command[index + 1] = _numbered(command[index + 1], number)
            return command
        if argument.startswith("--hostname="):
            command[index] = "--hostname=" + _numbered(argument.split("=", 1)[1], number)
            return command
    return [*command, "-n", f"worker{number}@%h"]


def _numbered(node_name: str, number: int) -> str:
    name, at, host = node_name.partition("@")
    return f"{name}{number}{at}{host}"


class Replicas:
    def __init__(self, count: int, command: list[str]):
        self.commands = {number: replica_command(command, number)
                         for number in range(1, count + 1)}
        self.running: dict[int, tuple[int, subprocess.Popen, float]] = {}  # pid → replica
        self.stopping = False
        self.exit_status = 0

    def start(self, number: int) -> None:
        env = {name: value for name, value in os.environ.items() if name != _METRICS_PORT}
        process = subprocess.Popen(self.commands[number], env=env)
        self.running[process.pid] = (number, process, time.monotonic())
        if self.stopping:  # a signal came while it was starting: `forward` may have missed it
            process.send_signal(signal.SIGTERM)

    def forward(self, signum: int, _frame=None) -> None:
        self.stopping = True
        for _, process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signum)

    def run(self) -> int:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self.forward)
        for number in self.commands:
            if not self.stopping:
                self.start(number)
        while self.running:
            pid, status = os.wait()
            replica = self.running.pop(pid, None)
            if replica is not None:
                self._exited(*replica, os.waitstatus_to_exitcode(status))
        return self.exit_status

    def _exited(self, number: int, process: subprocess.Popen, started: float,
                code: int) -> None:
        process.returncode = code  # reaped here, not by Popen
        _forget_metrics(process.pid)
        if self.stopping or code == 0:
            return
        if time.monotonic() - started < STARTUP_SECONDS:
            logger.error("replica %d exited with %d during start-up; stopping all", number,
                         code)
            self.exit_status = code if code > 0 else 128 - code
            self.forward(signal.SIGTERM)
            return
        logger.warning("replica %d exited with %d; starting it again", number, code)
        self.start(number)


def _serve_metrics() -> None:
    """The replicas' metrics on WEBHOOKS_WORKER_METRICS_PORT, when set. A configuration
    error is left for the replicas to report: they refuse to start and say why."""
    if not os.environ.get(_METRICS_PORT):
        return
    from webhooks_api.config import ConfigError, load_settings

    from .observability import serve_worker_metrics

    with contextlib.suppress(ConfigError):
        serve_worker_metrics(load_settings())


def _forget_metrics(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m webhooks_worker.replicas N COMMAND [ARGS...]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/replicas] "
                                                   "%(message)s")
    _serve_metrics()
    return Replicas(int(argv[0]), argv[1:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
