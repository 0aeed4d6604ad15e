"""The measurements of issue 7, one function each, on the stack a `Bench` holds.

Every scenario has a tenant of its own, resets the receiver's counters, and writes its
headline figures into `bench.figures` (the flat keys of the issue) and the rest into
`bench.details[name]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis
import requests

from bench import stack
from bench.ceiling import run_ceiling
from bench.disk import FsyncProbe, probe_directory
from bench.events import ReceivedMessages
from bench.loadgen import measure_receiver
from bench.receiver import RECEIVER_PORTS, SLOW_SECONDS
from bench.report import (
    arrival_latencies,
    latency_summary,
    missing_latencies,
    slowest_arrivals,
)
from bench.workload import (
    EVENT_TYPE,
    Tenant,
    delivery_ids,
    event_data,
    make_tenant,
    progress,
    publish_burst,
    publish_one,
    publish_paced,
    stop_retries,
    wait_attempted,
)
from webhooks_api.services.tenants import create_api_key


@dataclass
class Bench:
    """One run: the app handles, the receiver, the worker and what has been measured."""

    env: dict[str, str]
    settings: object
    session: object
    publish: object  # the `webhooks.publish` task
    celery: object
    receiver: object
    sizes: dict
    worker_args: str = ""  # appended to the Procfile's worker line (experiments)
    worker: stack.WorkerProcesses | None = None
    figures: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def tenant(self, name: str, urls: list[str], timeout_seconds: int = 30,
               payload_filter: dict | None = None) -> Tenant:
        return make_tenant(self.session, self.settings, name, urls, timeout_seconds,
                           payload_filter)

    def urls(self, name: str, count: int) -> list[str]:
        return [self.receiver.url(f"{name}-{index}") for index in range(count)]

    def drain_timeout(self, deliveries: int) -> float:
        """Generous: a slow machine must not fail the run, only show low figures."""
        return 120 + deliveries / 10


def receiver_capacity(bench: Bench) -> None:
    bench.receiver.reset()
    measured = measure_receiver(bench.receiver.port, bench.sizes["receiver_requests"])
    bench.figures["receiver_capacity_per_s"] = measured["per_s"]
    bench.details["receiver"] = measured


def end_to_end(bench: Bench, name: str, subscriptions: int, events: int,
               urls: list[str] | None = None, answer_seconds: float = 0.0) -> dict:
    """Publish `events` at once to a tenant with `subscriptions` (to `urls`, else to fast
    receivers); time until all stored."""
    tenant = bench.tenant(name, urls or bench.urls(name, subscriptions))
    return timed_burst(bench, tenant, events, answer_seconds)


def _healthy_ids(bench: Bench, tenant: Tenant) -> list[str]:
    """The tenant's subscriptions whose endpoint answers (all but those that hang)."""
    return [subscription_id for subscription_id, url
            in zip(tenant.subscription_ids, tenant.urls, strict=True)
            if not bench.receiver.hangs(url)]


def timed_burst(bench: Bench, tenant: Tenant, events: int, answer_seconds: float = 0.0
                ) -> dict:
    """Publish `events` at once; time until every healthy delivery's attempt is stored.

    Deliveries to endpoints that hang are not waited for: when their timeout ends says
    nothing of the engine's speed, only whether they held the others up, which the healthy
    ones' time shows. `answer_seconds` (the slowest receiver's answer) widens the drain
    timeout by what one subscription's events would take one after another."""
    healthy = _healthy_ids(bench, tenant)
    only = healthy if len(healthy) < len(tenant.subscription_ids) else None
    expected = len(healthy) * events
    bench.receiver.reset()
    cpu_before = bench.worker.cpu_seconds()
    own_before, machine_before = time.process_time(), stack.machine_cpu_seconds()
    start = time.monotonic()
    publish_burst(bench.publish, tenant, events)
    published_s = time.monotonic() - start
    done = wait_attempted(bench.session, tenant, expected,
                          bench.drain_timeout(expected) + events * answer_seconds,
                          subscription_ids=only)
    elapsed = time.monotonic() - start
    cpu_after = bench.worker.cpu_seconds()
    own_ms, machine_ms = (1000 * (time.process_time() - own_before) / expected,
                          1000 * (stack.machine_cpu_seconds() - machine_before) / expected)
    cpu_ms = {role: round(1000 * (cpu_after[role] - cpu_before[role]) / expected, 3)
              for role in cpu_after}
    received = bench.receiver.stats()
    return {
        "subscriptions": len(tenant.subscription_ids), "healthy_subscriptions": len(healthy),
        "events": events, "deliveries": expected,
        "succeeded": done.succeeded, "seconds": round(elapsed, 3),
        "publish_seconds": round(published_s, 3),
        "per_s": round(done.succeeded / elapsed, 1),
        "received": received["requests"], "receiver_connections": received["connections"],
        "receiver_hung_requests": received["hung_requests"],
        # CPU is steadier than wall clock on a shared machine: the worker's own cost.
        "worker_cpu_ms_per_delivery": round(sum(cpu_ms.values()), 3),
        "worker_cpu_ms_per_delivery_by_process": cpu_ms,
        # The rest of the machine: this process publishes (and polls), inside the window.
        "publisher_cpu_ms_per_delivery": round(own_ms, 3),
        "machine_cpu_ms_per_delivery": round(machine_ms, 3),
    }


def throughput(bench: Bench) -> None:
    """End-to-end deliveries/s for both shapes, each against its own ceiling."""
    shapes = (("1sub", 1, bench.sizes["events_1sub"]),
              ("100sub", 100, bench.sizes["events_100sub"]))
    results = {}
    for label, subscriptions, events in shapes:
        name = f"tput{label}"
        ceiling = run_ceiling(bench.urls(name, subscriptions), subscriptions * events)
        measured = end_to_end(bench, name, subscriptions, events)
        measured["ceiling"] = ceiling
        measured["ratio"] = round(measured["per_s"] / ceiling["per_s"], 3)
        results[label] = measured
        suffix = "" if label == "1sub" else "_100sub"
        bench.figures[f"ceiling_per_s{suffix}"] = ceiling["per_s"]
        bench.figures[f"e2e_per_s_{label}"] = measured["per_s"]
        bench.figures[f"ratio_{label}"] = measured["ratio"]
        if floor := bench.figures.get("task_floor_per_s"):
            # The rate if the task bodies cost nothing: each delivery is its deliver task
            # and its share of the event's publish task, run at the floor's rate.
            tasks_per_delivery = 1 + 1 / subscriptions
            bench.figures[f"ratio_bound_{label}"] = round(
                floor / tasks_per_delivery / ceiling["per_s"], 3)
        for figure in ("worker", "publisher", "machine"):
            bench.figures[f"{figure}_cpu_ms_per_delivery_{label}"] = \
                measured[f"{figure}_cpu_ms_per_delivery"]
    connections = sum(r["receiver_connections"] for r in results.values())
    deliveries = sum(r["deliveries"] for r in results.values())
    bench.figures["receiver_connections_per_delivery"] = round(connections / deliveries, 4)
    bench.details["throughput"] = results


def slow_receivers(bench: Bench) -> None:
    """End-to-end deliveries/s to receivers that answer after 200 ms, against what workers
    that wait for each answer could reach: one delivery per slot per 200 ms."""
    subscriptions, events = 100, bench.sizes["slow_receiver_events"]
    urls = [bench.receiver.slow_url(f"slow-{index}") for index in range(subscriptions)]
    measured = end_to_end(bench, "slow", subscriptions, events, urls)
    waiting_bound = bench.worker.pool()["slots"] / SLOW_SECONDS
    bench.details["slow_receivers"] = {**measured, "receiver_seconds": SLOW_SECONDS,
                                       "waiting_bound_per_s": waiting_bound}
    bench.figures["e2e_per_s_slow_receivers"] = measured["per_s"]
    bench.figures["slow_receivers_vs_waiting"] = round(measured["per_s"] / waiting_bound, 2)


def many_ports(bench: Bench) -> None:
    """End-to-end deliveries/s to 100 receivers on 100 ports (a connection pool each in every
    worker process), against the 100-subscription throughput on one port when it ran too:
    what a worker keeps alive for many receivers, and the connections it opens."""
    events = bench.sizes["events_100sub"]
    urls = [bench.receiver.port_url(f"ports-{index}", index)
            for index in range(RECEIVER_PORTS)]
    measured = end_to_end(bench, "ports", RECEIVER_PORTS, events, urls)
    bench.details["many_ports"] = measured
    bench.figures["e2e_per_s_100ports"] = measured["per_s"]
    bench.figures["receiver_connections_per_delivery_100ports"] = round(
        measured["receiver_connections"] / measured["deliveries"], 4)


# Answer times of the internet scenario's receivers, 10 receivers each.
INTERNET_DELAYS_MS = (20, 40, 60, 80, 100, 150, 200, 300, 500, 800)
INTERNET_HANGING_EVERY = 20  # receivers 19, 39, ... hang: one in each of five answer times
INTERNET_TIMEOUT_SECONDS = 5  # the API's minimum


def _internet_urls(bench: Bench, name: str) -> list[str]:
    """100 receivers, each on a host of its own, 10 per answer time; 5 of them hang."""
    per_delay = 10
    return [bench.receiver.hanging_host_url(f"{name}-{index}", index)
            if index % INTERNET_HANGING_EVERY == INTERNET_HANGING_EVERY - 1
            else bench.receiver.host_url(f"{name}-{index}", index,
                                         INTERNET_DELAYS_MS[index // per_delay])
            for index in range(per_delay * len(INTERNET_DELAYS_MS))]


def internet(bench: Bench) -> None:
    """A burst to receivers that answer as they do across the internet (20–800 ms, each
    on its own host) with 5 of 100 hanging until their timeout: healthy deliveries/s,
    against the same run's 100 fast subscriptions on one port (`internet_vs_fast`). A
    worker that waits for each answer in a slot, or lets the hanging ones hold slots, is
    far below the fast shape here; one that keeps many POSTs in flight is not."""
    tenant = bench.tenant("internet", _internet_urls(bench, "internet"),
                          timeout_seconds=INTERNET_TIMEOUT_SECONDS)
    measured = timed_burst(bench, tenant, bench.sizes["internet_events"],
                           answer_seconds=max(INTERNET_DELAYS_MS) / 1000)
    measured["hanging_released"] = close_hanging(bench, tenant, INTERNET_TIMEOUT_SECONDS)
    bench.details["internet"] = {**measured, "delays_ms": INTERNET_DELAYS_MS,
                                 "timeout_seconds": INTERNET_TIMEOUT_SECONDS}
    bench.figures["e2e_per_s_internet"] = measured["per_s"]


def busy_slow(bench: Bench) -> None:
    """A burst to one receiver that answers in 200 ms: how many attempts the worker keeps in
    flight to one slow endpoint (its window), against one fast subscription of the same
    run (`busy_slow_vs_fast`)."""
    events = bench.sizes["busy_slow_events"]
    measured = end_to_end(bench, "busyslow", 1, events, [bench.receiver.slow_url("busyslow")],
                          answer_seconds=SLOW_SECONDS)
    bench.details["busy_slow"] = {**measured, "receiver_seconds": SLOW_SECONDS}
    bench.figures["e2e_per_s_busy_slow"] = measured["per_s"]


def hosts(bench: Bench) -> None:
    """Deliveries to many receivers on hosts of their own (1,000; 200 with --quick): what
    a worker keeps per host (connection pools, windows) when hosts are many, and the new
    connections it opens."""
    count, events = bench.sizes["hosts_subscriptions"], bench.sizes["hosts_events"]
    urls = [bench.receiver.host_url(f"hosts-{index}", index) for index in range(count)]
    measured = end_to_end(bench, "hosts", count, events, urls)
    bench.details["hosts"] = measured
    bench.figures["hosts_receivers"] = count
    bench.figures["e2e_per_s_hosts"] = measured["per_s"]
    bench.figures["receiver_connections_per_delivery_hosts"] = round(
        measured["receiver_connections"] / measured["deliveries"], 4)


# ratio figure → (figure, the figure of the same run it is divided by)
RATIOS = {
    "ports_vs_one_port": ("e2e_per_s_100ports", "e2e_per_s_100sub"),
    "internet_vs_fast": ("e2e_per_s_internet", "e2e_per_s_100sub"),
    "busy_slow_vs_fast": ("e2e_per_s_busy_slow", "e2e_per_s_1sub"),
}


def ratios(bench: Bench) -> None:
    """The figures measured against another of the same run, once all have run: whatever
    the order of `--only`, a ratio is there when both sides are."""
    for key, (figure, base) in RATIOS.items():
        if bench.figures.get(figure) is not None and bench.figures.get(base):
            bench.figures[key] = round(bench.figures[figure] / bench.figures[base], 3)


def latency(bench: Bench) -> None:
    """publish → receive at steady rates, one subscription (one delivery per event)."""
    results = {}
    disk_directory = probe_directory(bench.session)
    for rate in bench.sizes["latency_rates"]:
        tenant = bench.tenant(f"lat{rate}", bench.urls(f"lat{rate}", 1))
        count = int(rate * bench.sizes["latency_seconds"])
        bench.receiver.reset()
        with FsyncProbe(disk_directory) as disk:
            achieved = publish_paced(bench.publish, tenant, rate, count)
            wait_attempted(bench.session, tenant, count, bench.drain_timeout(count))
        records = bench.receiver.records()
        summary = latency_summary(arrival_latencies(records, tenant.published))
        results[str(rate)] = {"rate_per_s": rate, "achieved_publish_rate": round(achieved, 1),
                              "events": count, **summary,
                              "slowest": slowest_arrivals(records, tenant.published),
                              "disk_fdatasync": disk.summary()}
    bench.details["latency"] = results
    for rate, prefix in ((50, "latency"), (200, "latency_200")):
        if str(rate) in results:
            bench.figures[f"{prefix}_p50_ms"] = results[str(rate)]["p50_ms"]
            bench.figures[f"{prefix}_p99_ms"] = results[str(rate)]["p99_ms"]
    disk_at_50 = results.get("50", {}).get("disk_fdatasync", {})
    if disk_at_50.get("samples"):
        bench.figures["latency_disk_fdatasync_max_ms"] = disk_at_50["max_ms"]
        bench.figures["latency_disk_stalls"] = len(disk_at_50["stalls"])


def _deliver_messages_enqueued(client: redis.Redis, prefix: str) -> int:
    """Deliver messages in the queue or held unacknowledged by the worker."""
    waiting = client.llen(f"{prefix}webhooks.deliver")
    held = sum(b'"webhooks.deliver"' in value for value in client.hvals(f"{prefix}unacked"))
    return waiting + held


# What a tenant writes to get only its large invoices in two currencies; every invoice of
# the benchmark (amount_due 4200 to 5199, currency "eur") matches it.
FANOUT_FILTER = {"all": [{"path": "data.amount_due", "gte": 1000},
                         {"path": "data.currency", "in": ["eur", "usd"]},
                         {"not": {"path": "metadata.test", "eq": True}}]}


def _fan_out_marks(bench: Bench, tenant: Tenant, count: int,
                   client: redis.Redis) -> dict[str, float]:
    """Seconds from the publish to each mark of one event's fan-out to `count`
    deliveries (see `fanout`)."""
    prefix = bench.env["WEBHOOKS_BROKER_KEY_PREFIX"]
    bench.receiver.reset()
    marks: dict[str, float] = {}
    start = time.monotonic()
    publish_one(bench.publish, tenant, 0)
    deadline = start + bench.drain_timeout(count)
    while len(marks) < 4:
        now = time.monotonic() - start
        state = progress(bench.session, tenant)
        if "rows" not in marks and state.rows >= count:
            marks["rows"] = now
        if "enqueue" not in marks and (
                _deliver_messages_enqueued(client, prefix) + state.attempted >= count):
            marks["enqueue"] = now
        if "delivered" not in marks and bench.receiver.stats()["requests"] >= count:
            marks["delivered"] = now
        if "stored" not in marks and state.attempted >= count:
            marks["stored"] = now
        if time.monotonic() > deadline:
            raise TimeoutError(f"fan-out to {count} unfinished: {state}, marks {marks}")
        time.sleep(0.02 if len(marks) < 2 else 0.1)
    return {mark: round(seconds, 3) for mark, seconds in marks.items()}


def fanout(bench: Bench) -> None:
    """One event to N subscriptions: rows stored, tasks enqueued, all received, all stored;
    then the same with a payload filter (FANOUT_FILTER, which the event matches) on every
    subscription, whose enqueue time is `fanout_10k_filtered_enqueue_s`.

    "Enqueued" is the first moment when the deliver messages waiting in Redis, those the
    worker holds, and the deliveries already stored add up to N (±concurrency: a message is
    acknowledged just after its delivery is stored).
    """
    count = bench.sizes["fanout_subscriptions"]
    client = redis.Redis.from_url(bench.env["CELERY_BROKER_URL"])
    plain = bench.tenant("fanout", [bench.receiver.url("fanout")] * count)
    marks = _fan_out_marks(bench, plain, count, client)
    filtered = bench.tenant("fanout_filtered", [bench.receiver.url("fanout_filtered")] * count,
                            payload_filter=FANOUT_FILTER)
    filtered_marks = _fan_out_marks(bench, filtered, count, client)
    client.close()
    key = "fanout_10k" if count == 10_000 else f"fanout_{count}"
    bench.figures["fanout_subscriptions"] = count
    for mark, seconds in marks.items():
        bench.figures[f"{key}_{mark}_s"] = seconds
    bench.figures[f"{key}_filtered_enqueue_s"] = filtered_marks["enqueue"]
    bench.details["fanout"] = {"subscriptions": count, **marks,
                               "succeeded": progress(bench.session, plain).succeeded,
                               "filtered": {**filtered_marks, "filter": FANOUT_FILTER,
                                            "succeeded": progress(bench.session,
                                                                  filtered).succeeded}}


def _waited(condition, timeout: float, message: str, strict: bool = True) -> bool:
    """`stack.wait_until` that, unless `strict`, reports a timeout instead of raising."""
    try:
        stack.wait_until(condition, timeout, message)
    except TimeoutError:
        if strict:
            raise
        return False
    return True


def paced_arrivals(bench: Bench, tenant: Tenant, rate_per_s: float, events: int,
                   timeout: float, strict: bool = True) -> dict:
    """Publish `events` at a steady rate, wait (up to `timeout` after the last one) until
    every healthy subscription has received them all; the healthy arrivals' latencies.

    Not `strict`: a backlog still there at the timeout is reported (`drained`), not raised,
    and each arrival still missing counts as its lower bound, the wait's end − its publish
    time, so a machine that cannot keep up shows a high percentile, not a flattering one."""
    healthy = len(_healthy_ids(bench, tenant))
    expected = healthy * events
    bench.receiver.reset()
    started = time.monotonic()
    achieved = publish_paced(bench.publish, tenant, rate_per_s, events)
    drained = _waited(lambda: bench.receiver.stats()["requests"] >= expected, timeout,
                      f"{expected} healthy deliveries of {tenant.id}", strict)
    until = time.monotonic()
    records = bench.receiver.records()
    latencies = arrival_latencies(records, tenant.published)
    missing = missing_latencies(records, tenant.published, healthy, until)
    last = max((arrived for arrived, event_id in records if event_id in tenant.published),
               default=until)
    return {"healthy_subscriptions": healthy,
            "hanging_subscriptions": len(tenant.urls) - healthy, "events": events,
            "rate_per_s": rate_per_s, "achieved_publish_rate": round(achieved, 1),
            "offered_healthy_per_s": round(healthy * rate_per_s, 1),
            "achieved_healthy_per_s": round(len(latencies) / max(last - started, 1e-9), 1),
            "drained": drained, "missing": len(missing),
            **latency_summary(latencies + missing)}


def _healthy_latencies(bench: Bench, name: str, healthy: int, hanging: int,
                       events: int | None = None) -> dict:
    urls = bench.urls(name, healthy) + [bench.receiver.hanging_url(f"{name}-{index}")
                                        for index in range(hanging)]
    tenant = bench.tenant(name, urls, timeout_seconds=bench.sizes["hol_timeout_seconds"])
    events = events or bench.sizes["hol_events"]
    measured = paced_arrivals(bench, tenant, bench.sizes["hol_events_per_s"], events,
                              bench.drain_timeout(len(urls) * events) + hanging * events * 5)
    # Let the hanging attempts time out and be stored, then close them: their retries
    # must not hang the worker during the scenarios that follow.
    wait_attempted(bench.session, tenant, len(urls) * events,
                   bench.drain_timeout(len(urls) * events) + hanging * events * 10)
    stop_retries(bench.session, tenant)
    return measured


def close_hanging(bench: Bench, tenant: Tenant, timeout_seconds: float) -> bool:
    """Close a scenario's unfinished deliveries, then wait until the attempts still hanging
    have reached their timeout (the receiver holds no unanswered request) and close what
    they rescheduled: neither their retries nor their held slots may disturb the scenarios
    that follow. Waiting for every hanging delivery's own attempt, as head-of-line does,
    would take a window's worth of timeouts per subscription. False: requests were still
    held at the end of the wait."""
    stop_retries(bench.session, tenant)
    released = _waited(lambda: bench.receiver.stats()["hung_open"] == 0,
                       timeout_seconds + 30, "the hanging attempts to time out", strict=False)
    time.sleep(1)  # the record of an attempt that has just timed out
    stop_retries(bench.session, tenant)
    return released


def head_of_line(bench: Bench) -> None:
    """Healthy p99 with 10 of 100 endpoints hanging until the timeout, against the same 90
    healthy endpoints alone. A first fan-out to 90 other endpoints, not measured, warms the
    worker up: a baseline taken cold (each replica's first connections and prepared
    statements) is slower than the worker's steady state, and hid a ratio of 1.5 × as 1.1 ×."""
    _healthy_latencies(bench, "holwarm", healthy=90, hanging=0, events=1)
    baseline = _healthy_latencies(bench, "holbase", healthy=90, hanging=0)
    hanging = _healthy_latencies(bench, "holhang", healthy=90, hanging=10)
    bench.details["head_of_line"] = {"baseline": baseline, "hanging": hanging,
                                     "timeout_seconds": bench.sizes["hol_timeout_seconds"]}
    bench.figures["hol_p99_ms_baseline"] = baseline["p99_ms"]
    bench.figures["hol_p99_ms_hanging"] = hanging["p99_ms"]
    if baseline["p99_ms"]:
        bench.figures["hol_p99_ratio"] = round(hanging["p99_ms"] / baseline["p99_ms"], 2)


SUSTAINED_SUBSCRIPTIONS = 100
SUSTAINED_HANGING = 10
SUSTAINED_TIMEOUT_SECONDS = 30  # the default


def _sustained_urls(bench: Bench, name: str, hanging: int) -> list[str]:
    """Receivers on hosts of their own; the last `hanging` never answer."""
    healthy = SUSTAINED_SUBSCRIPTIONS - hanging
    return [bench.receiver.host_url(f"{name}-{index}", index) if index < healthy
            else bench.receiver.hanging_host_url(f"{name}-{index}", index)
            for index in range(SUSTAINED_SUBSCRIPTIONS)]


def _messages(received: ReceivedMessages, ids: set[str]) -> dict:
    """Deliver messages taken for these deliveries: in all, on average and at most."""
    counts = received.messages_for(ids)
    return {"deliveries": len(counts), "messages": sum(counts),
            "per_delivery": round(sum(counts) / len(counts), 2) if counts else None,
            "max_per_delivery": max(counts, default=None)}


def _sustained_phase(bench: Bench, name: str, hanging: int) -> dict:
    """One pace of events for 100 subscriptions, `hanging` of them hanging: the healthy
    latencies, and the deliver messages the worker took per delivery (events
    `task-received`, bench/events.py) until the healthy ones were in."""
    tenant = bench.tenant(name, _sustained_urls(bench, name, hanging),
                          timeout_seconds=SUSTAINED_TIMEOUT_SECONDS)
    rate = bench.sizes["sustained_rate"]
    events = round(rate * bench.sizes["sustained_seconds"])
    with ReceivedMessages(bench.celery) as received:
        measured = paced_arrivals(bench, tenant, rate, events,
                                  bench.sizes["sustained_drain_seconds"], strict=False)
    healthy = set(_healthy_ids(bench, tenant))
    hanging_subscriptions = [sid for sid in tenant.subscription_ids if sid not in healthy]
    measured["messages_hanging"] = _messages(
        received, delivery_ids(bench.session, tenant, hanging_subscriptions))
    measured["messages_healthy"] = _messages(
        received, delivery_ids(bench.session, tenant, sorted(healthy)))
    measured["hanging_released"] = close_hanging(bench, tenant, SUSTAINED_TIMEOUT_SECONDS)
    return measured


def hanging_sustained(bench: Bench) -> None:
    """Healthy p99 at a steady 10 events/s to 100 subscriptions, 10 of which hang until
    their 30 s timeout, against 100 healthy ones at the same pace (run first); and how many
    deliver messages a hanging delivery costs while its subscription's window is full (each
    deferral is a message sent again). Head-of-line's three events are over before any
    hanging attempt times out; here the hanging attempts pile up for a minute."""
    baseline = _sustained_phase(bench, "susbase", hanging=0)
    hanging = _sustained_phase(bench, "sushang", hanging=SUSTAINED_HANGING)
    bench.details["hanging_sustained"] = {"baseline": baseline, "hanging": hanging,
                                          "timeout_seconds": SUSTAINED_TIMEOUT_SECONDS}
    bench.figures["hanging_sustained_p99_ms_baseline"] = baseline["p99_ms"]
    bench.figures["hanging_sustained_p99_ms_hanging"] = hanging["p99_ms"]
    if baseline["p99_ms"] and hanging["p99_ms"] is not None:
        bench.figures["hanging_sustained_p99_ratio"] = round(
            hanging["p99_ms"] / baseline["p99_ms"], 2)
    bench.figures["hanging_sustained_messages_per_delivery"] = \
        hanging["messages_hanging"]["per_delivery"]


def publish_api(bench: Bench) -> None:
    """POST /publish through the Procfile's gunicorn, with 1 and with 1,000 subscriptions.

    The web process gets a broker prefix no worker reads: the 1,000-subscription fan-outs
    would otherwise flood the worker; the request's own work is what is measured.
    """
    prefix = f"{bench.env['WEBHOOKS_BROKER_KEY_PREFIX']}api-"
    web, base_url = stack.start_web({**bench.env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix})
    client = requests.Session()
    results = {}
    try:
        for subscriptions in (1, 1000):
            tenant = bench.tenant(f"api{subscriptions}",
                                  [bench.receiver.url("api")] * subscriptions)
            key = create_api_key(bench.session, tenant.id).api_key
            headers = {"Authorization": f"Bearer {key}"}
            latencies, failures = [], 0
            for seq in range(bench.sizes["api_warmup"] + bench.sizes["api_requests"]):
                body = {"event_type": EVENT_TYPE, "data": event_data(seq)}
                started = time.perf_counter()
                response = client.post(f"{base_url}/api/v1/webhooks/publish", json=body,
                                       headers=headers, timeout=30)
                took = time.perf_counter() - started
                failures += response.status_code != 202
                if seq >= bench.sizes["api_warmup"]:
                    latencies.append(took)
            results[str(subscriptions)] = {"failures": failures, **latency_summary(latencies)}
            bench.figures[f"publish_api_p50_ms_{subscriptions}"] = \
                results[str(subscriptions)]["p50_ms"]
            bench.figures[f"publish_api_p99_ms_{subscriptions}"] = \
                results[str(subscriptions)]["p99_ms"]
    finally:
        client.close()
        web.stop()
        stack.delete_broker_keys(bench.env["CELERY_BROKER_URL"], prefix)
    bench.details["publish_api"] = {"command": web.expanded, **results}
