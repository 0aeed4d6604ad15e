"""Checks of the documentation blocks that are neither run nor request/response bodies:
each compares a block with what the code does or what a real run shows (a real delivery's
headers and body, the live /metrics, the Procfile, the CLI's options, the settings).

`CHECKS` maps a block's name (document, first line) to its check; tests/support/doc_blocks.py
counts a block it names as checked, and tests/ops/test_docs.py::test_checked_blocks runs them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace

import requests
import yaml

from tests.support.doc_blocks import ROOT, Block
from webhooks_api.config import (
    ENVIRONMENTS,
    ConfigError,
    Settings,
    check_worker_redis,
    load_settings,
    worker_refusal,
)
from webhooks_api.logging_setup import configure_logging
from webhooks_api.messaging.names import WORKER_QUEUES

CHECKS: dict[tuple[str, str], Callable[[Block, Live], None]] = {}
# Read by the Procfile or Flower, not by config.py (README's "Process settings").
PROCESS_SETTINGS = {"PORT", "BIND_ADDRESS", "WEB_CONCURRENCY", "WEB_THREADS",
                    "WORKER_CONCURRENCY", "WORKER_NAME", "WORKER_PROCESSES", "FLOWER_PORT",
                    "FLOWER_BASIC_AUTH", "WEBHOOKS_DATA_DIR", "REDIS_PORT"}


@dataclasses.dataclass(frozen=True)
class Live:
    """What a check may compare with: the live API, the app, and one real delivery."""

    api: str
    app: object
    env: dict[str, str]  # the test stack's settings, for commands run against it
    headers: dict[str, str]
    body: bytes


def checks(*keys: tuple[str, str]):
    def register(function):
        for key in keys:
            CHECKS[key] = function
        return function
    return register


@checks(("docs/DESIGN.md", "Content-Type: application/json"),
        ("docs/receiving.md", "Content-Type: application/json"))
def delivery_headers(block: Block, live: Live) -> None:
    """The header list is a real delivery's: every name listed is sent, every header of ours
    that is sent is listed, and a value written out is the value sent."""
    sent = {name.lower(): value for name, value in live.headers.items()}
    listed = {}
    for line in block.code.splitlines():
        if line.startswith("<"):  # "<the subscription's custom headers>"
            continue
        name, _, rest = line.partition(":")
        listed[name.lower()] = rest.split()[0] if rest.split() else ""
    ours = {name for name in sent
            if name.startswith(("x-webhook-", "webhook-")) or name in {"user-agent",
                                                                       "content-type"}}
    assert set(listed) <= set(sent), f"listed, not sent: {sorted(set(listed) - set(sent))}"
    assert ours <= set(listed), f"sent, not listed: {sorted(ours - set(listed))}"
    for name, value in listed.items():
        literal = value.split("<", 1)[0]  # up to a placeholder
        if "..." in value:
            literal = value.split("...", 1)[0]
        if name in {"x-webhook-timestamp", "webhook-timestamp", "x-webhook-attempt"}:
            continue  # a sample time or count
        assert sent[name].startswith(literal), f"{name}: sent {sent[name]!r}, shown {value!r}"


@checks(("docs/DESIGN.md", '{"id": "evt_...", "type": "invoice.created", "timestamp": '
                           '"2025-09-30T12:00:00Z",'),
        ("docs/USAGE.md", '{"id": "evt_...", "type": "invoice.created", "timestamp": '
                          '"2025-09-30T12:00:00Z",'))
def delivery_body(block: Block, live: Live) -> None:
    """The body shown has a real delivery body's fields, each of the same JSON type."""
    shown, sent = json.loads(block.code), json.loads(live.body)
    assert shown.keys() == sent.keys(), f"shown {sorted(shown)}, sent {sorted(sent)}"
    for name, value in shown.items():
        assert type(value) is type(sent[name]), f"{name}: shown {value!r}, sent {sent[name]!r}"


@checks(("docs/HEALTH.md", "flask --app webhooks_api replay SUBSCRIPTION_ID "
                           "[--since 2026-11-28T00:00:00]"))
def cli_usage(block: Block, live: Live) -> None:
    """Each usage line names a command of `flask --app webhooks_api` with its options:
    the required ones outside brackets, the optional ones inside, none missing."""
    for line in block.code.splitlines():
        words = line.split()
        assert words[:3] == ["flask", "--app", "webhooks_api"], line
        command = live.app.cli.commands[words[3]]
        options = {param.opts[0]: param.required for param in command.params
                   if param.opts[0].startswith("--")}
        shown = {match.group(2): not match.group(1)
                 for match in re.finditer(r"(\[)?(--[\w-]+)", " ".join(words[4:]))}
        assert shown == options, f"{line}: {command.name} takes {options}"
        arguments = [param.name.upper() for param in command.params
                     if not param.opts[0].startswith("--")]
        assert [word for word in words[4:] if re.fullmatch(r"[A-Z_]+", word)] == arguments, line


@checks(("docs/HEALTH.md", "webhooks worker: refusing to start: the broker is not Redis and "
                           "WEBHOOKS_REDIS_URL is not"))
def worker_refusal_message(block: Block, live: Live) -> None:
    """The message is the worker's, for a RabbitMQ broker with the default settings."""
    settings = load_settings({"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"})
    try:
        check_worker_redis(settings)
    except ConfigError as error:
        message = str(worker_refusal(error))
    else:
        raise AssertionError("the worker would start")
    assert " ".join(block.code.split()) == message


@checks(("docs/DESIGN.md", 'other services ── publish.delay(...) / send_task("webhooks.publish") '
                           '──────────┐'),
        ("docs/USAGE.md", 'other services ── publish.delay(...) / send_task("webhooks.publish") '
                          '──────┐'))
def flow_diagram(block: Block, live: Live) -> None:
    """The diagram names the service's tasks, the default retry delays and beat's default
    intervals."""
    from webhooks_api.config import DEFAULT_RETRY_SCHEDULE
    from webhooks_api.messaging import names

    tasks = {value for name, value in vars(names).items() if name.endswith("_TASK")}
    shown = set(re.findall(r"\bwebhooks\.[a-z_]+", block.code))
    assert shown <= tasks, f"not tasks: {sorted(shown - tasks)}"
    assert {"webhooks.publish", "webhooks.deliver", "webhooks.sweep"} <= shown
    delays = re.search(r"(\d+) min, (\d+) h, (\d+) h", block.code).groups()
    assert (int(delays[0]) * 60, int(delays[1]) * 3600, int(delays[2]) * 3600) == \
        DEFAULT_RETRY_SCHEDULE
    settings = load_settings({})
    if "every minute" in block.code:
        assert settings.sweep_interval_seconds == 60
    if "hourly" in block.code:
        assert settings.retention_interval_seconds == 3600


@checks(("docs/operations.md", "celery -A webhooks_worker.celery_app inspect stats     # per "
                               'node: "pool": {"implementation": "celery.concurrency.gevent:'
                               'TaskPool", "max-concurrency": 200, ...}'))
def celery_commands(block: Block, live: Live) -> None:
    """Each line is a Celery remote command of its kind; the first, run against the test
    worker, shows the gevent pool and its size as the comment says."""
    from celery.worker.control import Panel

    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        assert words[:3] == ["celery", "-A", "webhooks_worker.celery_app"], line
        kind, name = words[3], [word for word in words[4:] if not word.startswith("-")][
            1 if "-d" in words else 0]
        assert Panel.meta[name].type == kind, line
    first = shlex.split(block.code.splitlines()[0], comments=True)
    shown = subprocess.run([sys.executable, "-m", "celery", *first[1:], "--json"],
                           env={**os.environ, **live.env}, cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    pools = [node["pool"] for node in json.loads(shown.stdout).values()]
    assert pools and all(pool["implementation"] == "celery.concurrency.gevent:TaskPool"
                         and "max-concurrency" in pool for pool in pools), pools


def procfile_lines() -> dict[str, str]:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


@checks(("docs/operations.md", "release: flask --app webhooks_api db upgrade"))
def the_procfile(block: Block, live: Live) -> None:
    """Operators copy the process lines: they are the Procfile's own, word for word (its
    comments aside)."""
    assert block.code.splitlines() == [f"{name}: {command}"
                                       for name, command in procfile_lines().items()]


def worker_options(argv: list[str]) -> dict[str, str]:
    """A worker command line as {option: value} (`worker` and the program included), the
    `${NAME:-default}` of the Procfile expanded to the default."""
    words = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", word) for word in argv]
    options, index = {"program": words[0].rsplit("/", 1)[-1]}, 1
    while index < len(words):
        word = words[index]
        name, equals, value = word.partition("=")
        if equals:
            options[name] = value
        elif word in {"-A", "-n", "-Q", "-c"}:
            options[word], index = words[index + 1], index + 1
        else:
            options[word] = ""
        index += 1
    return options


def procfile_worker(*without: str) -> dict[str, str]:
    options = worker_options(shlex.split(procfile_lines()["worker"]))
    return {name: value for name, value in options.items() if name not in without}


@checks(("docs/operations.md", "# /etc/systemd/system/webhooks-worker@.service"))
def systemd_unit(block: Block, live: Live) -> None:
    """The unit runs the Procfile's worker line (a node name of its own per instance)."""
    exec_start = re.search(r"^ExecStart=(.*)$", block.code, re.M).group(1)
    assert {**worker_options(shlex.split(exec_start)), "-n": None} == \
        {**procfile_worker(), "-n": None}


@checks(("docs/operations.md", "apiVersion: apps/v1"))
def kubernetes_deployment(block: Block, live: Live) -> None:
    """The container runs the Procfile's worker line (Celery names the node per pod)."""
    container = yaml.safe_load(block.code)["spec"]["template"]["spec"]["containers"][0]
    assert worker_options(container["command"]) == procfile_worker("-n")


@checks(("docs/operations.md", "worker_fanout: celery -A webhooks_worker.celery_app worker "
                               "--pool=gevent --concurrency=10 -Q webhooks.publish,webhooks."
                               "maintenance -n fanout@%h --loglevel=INFO"))
def split_workers(block: Block, live: Live) -> None:
    """Each line is the Procfile's worker on some of its queues; together they read all."""
    queues = []
    for line in block.code.splitlines():
        options = worker_options(shlex.split(line.split(": ", 1)[1]))
        queues += options.pop("-Q").split(",")
        assert {**options, "-n": None, "--concurrency": None} == \
            procfile_worker("-Q") | {"-n": None, "--concurrency": None}, line
    assert sorted(queues) == sorted(WORKER_QUEUES)


@checks(("docs/operations.md", "max_connections ≥ worker processes × 15"))
def connection_budget(block: Block, live: Live) -> None:
    """The connections per process are the pools' sizes (a worker's two, SQLAlchemy's
    default for a gunicorn worker)."""
    from sqlalchemy.pool import QueuePool

    from webhooks_api.app import _WORKER_ENGINE_OPTIONS
    from webhooks_worker.runtime.prepared import AUTOCOMMIT_POOL

    worker = sum(pool["pool_size"] + pool["max_overflow"]
                 for pool in (AUTOCOMMIT_POOL, _WORKER_ENGINE_OPTIONS))
    default = QueuePool.__init__.__kwdefaults__ or {}
    web = default.get("pool_size", 5) + default.get("max_overflow", 10)
    assert re.findall(r"(worker processes|gunicorn workers) × (\d+)", block.code) == \
        [("worker processes", str(worker)), ("gunicorn workers", str(web))]


@checks(("docs/operations.md", "groups:"))
def prometheus_rule(block: Block, live: Live) -> None:
    """The alert reads a metric the live /metrics serves."""
    rule = yaml.safe_load(block.code)["groups"][0]["rules"][0]
    served = requests.get(f"{live.api}/metrics", timeout=10).text
    for name in re.findall(r"\bwebhooks_\w+", rule["expr"]):
        assert re.search(rf"^{name}[{{ ]", served, re.M), f"{name} is not in /metrics"


@checks(("docs/operations.md", '{"asctime": "2026-11-29 12:19:27,595", "levelname": "INFO",'))
def json_log_line(block: Block, live: Live) -> None:
    """A worker's attempt line with WEBHOOKS_LOG_FORMAT=json has the fields shown."""
    from webhooks_worker.runtime import observability

    stream, root = io.StringIO(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging(load_settings({"WEBHOOKS_LOG_FORMAT": "json"}))
        root.handlers[0].stream = stream
        claim = SimpleNamespace(tenant_id="tenant_xyz", subscription_id="sub_1",
                                event_id="evt_1", event_type="invoice.created",
                                url="https://hooks.example.com/", occurred_at=None)
        result = SimpleNamespace(status_code=200, error_class=None, duration_ms=13)
        observability.attempt_finished(claim, "dlv_1", 1, "automatic", result, None)
    finally:
        root.handlers = handlers
        root.setLevel(level)
    logged = json.loads(stream.getvalue().splitlines()[-1])
    assert sorted(json.loads(block.code)) == sorted(logged)


@checks(("docs/operations.md", "CELERY_BROKER_URL=amqp://webhooks:password@rabbitmq.internal"
                               ":5672/webhooks"),
        ("docs/operations.md", "WEBHOOKS_REDIS_URL=redis://redis.internal:6379/0"),
        ("docs/operations.md", "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.internal:4318"),
        ("docs/production.md", "WEBHOOKS_ENV=production"))
def settings_file(block: Block, live: Live) -> None:
    """Every name is a setting (of config.py or of the processes) and every value written
    out is one config.py accepts; production.md's block, its placeholders filled in, is
    also the settings of the stack tests/ops/test_production.py runs."""
    from tests.ops.test_readme_settings import names_config_reads

    pairs = dict(line.split("=", 1) for line in block.code.splitlines()
                 if line.strip() and not line.startswith("#"))
    known = names_config_reads() | PROCESS_SETTINGS
    assert set(pairs) <= known, f"not settings: {sorted(set(pairs) - known)}"
    for name, value in pairs.items():
        if "<" not in value and name != "WEBHOOKS_ENV":  # production needs the placeholders
            assert isinstance(load_settings({name: value}), Settings), name
    assert pairs.get("WEBHOOKS_ENV", "production") in ENVIRONMENTS


@checks(("README.md", "./scripts/bench     # or --quick, --full, --only throughput,latency, "
                      "--profile"),
        ("docs/benchmark.md", "./scripts/bench                      # default sizes"))
def bench_options(block: Block, live: Live) -> None:
    """Each command's options are the benchmark's (it refuses others); it is not run here:
    it takes minutes and the machine's whole CPU."""
    from bench.run import parse_args

    for line in block.code.splitlines():
        command, _, comment = line.partition("#")
        words = shlex.split(command)
        assert words[0] == "./scripts/bench", line
        parse_args(words[1:])
        for variant in re.findall(r"--[\w-]+(?: [\w,]*\w)?", comment):  # "# or --quick, ..."
            parse_args(variant.split())


@checks(("docs/ARCHITECTURE.md",
         "webhooks_worker/            celery_app.py (entry point), tasks.py (thin, named tasks)"))
def package_diagram(block: Block, live: Live) -> None:
    """The diagram names every subpackage of the two packages, and only those."""
    shown = set(re.findall(r"\b(\w+)/(?=\s)", block.code)) - {"webhooks_api",
                                                              "webhooks_worker"}
    actual = {path.parent.name for package in ("webhooks_api", "webhooks_worker")
              for path in (ROOT / package).glob("*/__init__.py")}
    assert shown == actual, (sorted(shown - actual), sorted(actual - shown))
