"""`python -m bench` (`./scripts/bench`): run the benchmark, print a table, write the JSON.

Order of a run: the receiver's own capacity; the task floor; throughput of both shapes, each
right after its ceiling; many ports, many hosts; receivers that answer as across the
internet; a burst to one slow receiver; latency at steady rates; fan-out; head-of-line
blocking, in a burst and sustained; slow receivers; the publish API; a payload search among
100,000 deliveries; the cost per delivery on the wire; then deliveries until the memory
target. `hanging_schedule` (a hanging receiver over its whole retry schedule, 30 times
faster, about 30 minutes at 10 events/s) runs only when `--only` names it. One worker
(`WORKER_PROCESSES` copies of the Procfile's line) serves the whole run, so its memory is
sampled across all of it.
Ratios between scenarios are taken at the end, whatever the order of `--only`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import memory, profile, report, scenarios, stack
from bench.cost import cost
from bench.floor import floor
from bench.receiver import ReceiverProcess
from bench.schedule import hanging_schedule
from bench.search import search

SIZES = {
    "quick": {
        "receiver_requests": 20_000, "events_1sub": 1000, "events_100sub": 10,
        "latency_rates": (50, 200), "latency_seconds": 5, "fanout_subscriptions": 2000,
        "hol_events": 2, "hol_events_per_s": 1, "hol_timeout_seconds": 5,
        "slow_receiver_events": 3,
        "internet_events": 10, "busy_slow_events": 300,
        "hosts_subscriptions": 200, "hosts_events": 5,
        "sustained_rate": 10, "sustained_seconds": 5, "sustained_drain_seconds": 120,
        "api_requests": 100, "api_warmup": 10, "cost_events": 200, "floor_tasks": 3000,
        "memory_target": 0,
        "profile_events": 1000, "profile_rate": 50,
    },
    "default": {
        "receiver_requests": 40_000, "events_1sub": 5000, "events_100sub": 50,
        "latency_rates": (50, 200), "latency_seconds": 10, "fanout_subscriptions": 10_000,
        "hol_events": 3, "hol_events_per_s": 1, "hol_timeout_seconds": 5,
        "slow_receiver_events": 10,
        "internet_events": 30, "busy_slow_events": 2000,
        "hosts_subscriptions": 1000, "hosts_events": 5,
        "sustained_rate": 10, "sustained_seconds": 60, "sustained_drain_seconds": 300,
        "api_requests": 300, "api_warmup": 20, "cost_events": 500, "floor_tasks": 5000,
        "memory_target": 0,
        "profile_events": 3000, "profile_rate": 50,
    },
    "full": {
        "receiver_requests": 40_000, "events_1sub": 5000, "events_100sub": 50,
        "latency_rates": (50, 200), "latency_seconds": 30, "fanout_subscriptions": 10_000,
        "hol_events": 6, "hol_events_per_s": 1, "hol_timeout_seconds": 5,
        "slow_receiver_events": 20,
        "internet_events": 30, "busy_slow_events": 2000,
        "hosts_subscriptions": 1000, "hosts_events": 10,
        "sustained_rate": 10, "sustained_seconds": 60, "sustained_drain_seconds": 600,
        "api_requests": 1000, "api_warmup": 20, "cost_events": 1000, "floor_tasks": 10_000,
        "memory_target": 50_000, "profile_events": 5000, "profile_rate": 50,
    },
}
SCENARIOS = {
    "floor": floor,
    "throughput": scenarios.throughput,
    "latency": scenarios.latency,
    "fanout": scenarios.fanout,
    "hol": scenarios.head_of_line,
    "slow": scenarios.slow_receivers,
    "ports": scenarios.many_ports,
    "hosts": scenarios.hosts,
    "internet": scenarios.internet,
    "busy_slow": scenarios.busy_slow,
    "hanging_sustained": scenarios.hanging_sustained,
    # ~30 minutes, with a worker of its own: only when named in --only
    "hanging_schedule": hanging_schedule,
    "api": scenarios.publish_api,
    "search": search,
    "cost": cost,
    "memory": memory.reach_target,  # sampled all along; this tops the run up to the target
    "profile": profile.profiled_throughput,  # --profile: an extra run, never a figure
}
DEFAULT_SCENARIOS = ("floor", "throughput", "ports", "hosts", "internet", "busy_slow",
                     "latency", "fanout", "hol", "hanging_sustained", "slow", "api", "search",
                     "cost", "memory")
NEEDS_NO_WORKER = {"floor", "api", "search", "cost", "hanging_schedule"}
RESULTS_FILE = stack.RESULTS / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick",
                      help="small counts: checks the harness in about 10 minutes")
    mode.add_argument("--full", action="store_const", dest="mode", const="full",
                      help="longer latency runs and 50,000 deliveries for the memory figure")
    parser.set_defaults(mode="default")
    parser.add_argument("--only", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true",
                        help="then profile the worker with py-spy during an extra 1-subscription "
                             "run (bench/results/profile-throughput.txt)")
    parser.add_argument("--concurrency", type=int,
                        help="WORKER_CONCURRENCY for the Procfile's worker line")
    parser.add_argument("--processes", type=int,
                        help="WORKER_PROCESSES: copies of the worker line to start (default: "
                             "that variable, else one per core; always 1 for a line that "
                             "runs webhooks_worker.replicas)")
    parser.add_argument("--worker-command",
                        help="run this instead of the Procfile's worker line "
                             f"({stack.WORKER_COMMAND_ENV} does the same), for "
                             "experiments; recorded in the JSON")
    parser.add_argument("--worker-args", default="",
                        help="extra arguments appended to the Procfile's worker line, for "
                             "experiments; write it with '=' (--worker-args='--pool threads'); "
                             "recorded in the JSON")
    parser.add_argument("--memory-target", type=int,
                        help="deliveries the worker must have made before the last RSS "
                             "sample (default: 50,000 with --full, else none)")
    parser.add_argument("--sustained-rate", type=float,
                        help="events/s of hanging_sustained (default 10: 1,000 deliveries/s, "
                             "more than a 2-core machine carries; below its 100-subscription "
                             "throughput the p99 measures latency, not a backlog)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    parser.add_argument("--keep-db", action="store_true",
                        help="keep the benchmark database for inspection")
    arguments = parser.parse_args(argv)
    arguments.scenarios = [name.strip() for name in arguments.only.split(",") if name.strip()]
    if arguments.profile and "profile" not in arguments.scenarios:
        arguments.scenarios.append("profile")
    unknown = set(arguments.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return arguments


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=stack.ROOT, capture_output=True,
                          text=True).stdout.strip()


def _config(arguments, sizes: dict, env: dict) -> dict:
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": arguments.mode, "scenarios": arguments.scenarios,
        "git_commit": _git("rev-parse", "HEAD"), "git_branch": _git("branch", "--show-current"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "sizes": sizes, "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in
                     ("celery", "kombu", "sqlalchemy", "psycopg2-binary", "requests",
                      "urllib3", "gunicorn")},
        "database": env["DATABASE_URL"].split("@")[-1],
        "broker": env["CELERY_BROKER_URL"].split("@")[-1],
        "broker_key_prefix": env["WEBHOOKS_BROKER_KEY_PREFIX"],
    }


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    sizes = dict(SIZES[arguments.mode])
    if arguments.memory_target is not None:
        sizes["memory_target"] = arguments.memory_target
    if arguments.sustained_rate is not None:
        sizes["sustained_rate"] = arguments.sustained_rate
    env = stack.bench_env(*stack.default_servers())
    for name, value in (("WORKER_CONCURRENCY", arguments.concurrency),
                        ("WORKER_PROCESSES", arguments.processes),
                        (stack.WORKER_COMMAND_ENV, arguments.worker_command)):
        if value:
            env[name] = str(value)
    # celeryconfig reads the environment when first imported: set it before the app exists.
    os.environ.update(env)
    from webhooks_api import create_app
    from webhooks_api.extensions import db
    from webhooks_worker.tasks import publish

    run_started = time.monotonic()
    config = _config(arguments, sizes, env)
    stack.migrate(env)
    app = create_app()
    context = app.app_context()
    context.push()
    receiver = ReceiverProcess()
    bench = scenarios.Bench(env=env, settings=app.config["WEBHOOKS_SETTINGS"],
                            session=db.session, publish=publish,
                            celery=app.extensions["celery"], receiver=receiver, sizes=sizes,
                            worker_args=arguments.worker_args)
    sampler = None
    durations: dict[str, float] = {}
    try:
        scenarios.receiver_capacity(bench)
        print(f"receiver: {bench.figures['receiver_capacity_per_s']:,.0f} req/s", flush=True)
        if set(arguments.scenarios) - NEEDS_NO_WORKER:
            bench.worker = stack.start_worker(env, bench.celery,
                                              extra_args=bench.worker_args)
            print(f"worker: {len(bench.worker.copies)} × {bench.worker.expanded}", flush=True)
            sampler = memory.MemorySampler(bench.worker, env["DATABASE_URL"]).start()
        for name in arguments.scenarios:
            started = time.monotonic()
            SCENARIOS[name](bench)
            durations[name] = round(time.monotonic() - started, 1)
            print(f"{name}: done in {durations[name]:.0f} s", flush=True)
        scenarios.ratios(bench)
    finally:
        if sampler is not None:
            bench.details["memory"] = memory.summarize(sampler.stop())
            bench.details["memory"]["samples"] = sampler.samples[::5]
            bench.figures.update(memory.figures(bench.details["memory"]))
        if bench.worker is not None:
            bench.worker.stop()
        receiver.stop()
        context.pop()
        stack.delete_broker_keys(env["CELERY_BROKER_URL"], env["WEBHOOKS_BROKER_KEY_PREFIX"])
        if not arguments.keep_db:
            with app.app_context():
                db.engine.dispose()
            stack.drop_database(env["DATABASE_URL"])

    if bench.worker is not None:
        config["worker_command"] = bench.worker.expanded
        config["worker_copies"] = len(bench.worker.copies)
        config["worker_commands"] = [copy.expanded for copy in bench.worker.copies]
        config.update(bench.worker.pool())
    config["load_average_at_end"] = os.getloadavg()
    config["seconds"] = round(time.monotonic() - run_started, 1)
    config["durations"] = durations
    report.write_json(arguments.output, {"config": config, "figures": bench.figures,
                                         "details": bench.details})
    report.print_table(bench.figures)
    if "profile" in bench.details:
        profile.print_summary(bench.details["profile"])
    print(f"\nwritten: {arguments.output}  ({config['seconds']:.0f} s in all)")
    return 0
