"""Settings: the one place the environment is read.

Every knob of DESIGN.md ("Running") and of the issues lives here with its default, so the
API, the worker, celeryconfig.py and the CLI agree on one value. The production profile
refuses unsafe combinations at start-up and names the setting that is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from urllib3.exceptions import LocationParseError
from urllib3.util import make_headers, parse_url

from webhooks_api.messaging.names import RETRY_QUEUE, WORKER_QUEUES

ENVIRONMENTS = ("production", "development", "test")

# Fixed key for development and test only: secrets stay readable across restarts of the
# embedded stack. The production profile refuses to start with it.
DEVELOPMENT_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LW5ldmVyLWluLXByb2R1Y3Rpb24="

DEFAULT_RETRY_SCHEDULE = (300, 3600, 21600)
LOG_FORMATS = ("text", "json")
REDIS_SCHEMES = ("redis", "rediss", "redis+socket")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
MAX_TIMEOUT_SECONDS = 300
# kombu's Redis transport, fixed so that a worker survives a Redis outage.
REDIS_TRANSPORT = "webhooks_api.messaging.redis_transport:Transport"


class ConfigError(ValueError):
    """A setting is missing or unsafe; the message names it."""


def worker_refusal(error: ConfigError) -> SystemExit:
    """An operator's mistake, not a crash: the worker exits 1 with one line naming the
    setting (from celeryconfig, which the gevent pool's start-up may load first, or from
    the worker's app)."""
    return SystemExit(f"webhooks worker: refusing to start: {error}")


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return lowered


def _schedule(value: str) -> tuple[int, ...]:
    try:
        delays = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"WEBHOOKS_RETRY_SCHEDULE must be comma-separated seconds, got {value!r}"
        ) from None
    if not delays or any(delay < 0 for delay in delays):
        raise ConfigError("WEBHOOKS_RETRY_SCHEDULE must list one or more non-negative delays")
    return delays


@dataclass(frozen=True)
class EgressProxy:
    """WEBHOOKS_EGRESS_PROXY, read: the HTTP proxy every delivery is tunnelled through.

    The operator's own address, so the SSRF rule does not judge it (it may well be
    private); the targets reached through it are judged as ever. `authorization` (from
    `user:password@` in the URL) goes in the CONNECT's Proxy-Authorization header only,
    and never into a repr, a log line or an error message.
    """

    host: str  # unbracketed, as the resolver takes it
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """`host:port`, what an operator's log may name."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _egress_proxy(value: str) -> EgressProxy:
    """Every refusal names the setting and never repeats the value (it may hold a
    password)."""
    name = "WEBHOOKS_EGRESS_PROXY"
    shape = "http://[user:password@]host:port"
    try:
        parts = parse_url(value.strip())
    except LocationParseError:
        raise ConfigError(f"{name} is not a valid URL; expected {shape}") from None
    if parts.scheme != "http":
        got = f"a {parts.scheme}:// URL" if parts.scheme else "no scheme"
        raise ConfigError(f"{name} must be an http:// URL (a proxy that accepts HTTP CONNECT), "
                          f"got {got}; expected {shape}")
    if not parts.host or not parts.port:
        raise ConfigError(f"{name} must name the proxy's host and port; expected {shape}")
    if (parts.path or "/") != "/" or parts.query is not None or parts.fragment is not None:
        raise ConfigError(f"{name} must have no path, query or fragment; expected {shape}")
    authorization = None
    if parts.auth is not None:
        user, _, password = parts.auth.partition(":")
        authorization = make_headers(
            proxy_basic_auth=f"{unquote(user)}:{unquote(password)}")["proxy-authorization"]
    return EgressProxy(parts.host.strip("[]"), parts.port, authorization)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with `load_settings`, which writes every default
    once (a field here has none, so a default cannot drift between two places)."""

    env: str
    database_url: str | None
    broker_url: str | None
    retry_schedule: tuple[int, ...]
    require_https: bool
    allow_private_targets: bool
    encryption_keys: tuple[str, ...]
    max_payload_bytes: int
    ca_bundle: str | None
    # Every delivery leaves through this proxy, by CONNECT to the checked address; None:
    # straight to the receiver.
    egress_proxy: EgressProxy | None
    # A delivery overdue by this much (message lost with a worker, or never sent) is swept.
    sweep_margin_seconds: int
    sweep_interval_seconds: int
    # Extra lease over the subscription's timeout before a claim counts as abandoned.
    claim_margin_seconds: int
    # Countdown messages one worker holds in memory (celery worker_eta_task_limit).
    worker_eta_task_limit: int
    # A task still running after this long is killed with its process (task_time_limit):
    # above the longest request timeout, for a process stuck outside the HTTP deadline.
    task_time_limit_seconds: int
    # A message of the publish, deliver or maintenance queue taken by a worker that died
    # (no ack) is handed out again after this; above the task time limit, with room for a
    # database-retry countdown (at most 60 s) and a wait for a pool slot.
    short_visibility_timeout_seconds: int
    metadata_max_bytes: int
    # Prefix on every broker key: several deployments (or test runs) can share one Redis.
    broker_key_prefix: str | None
    log_format: str
    # Events (with their deliveries and attempts) and attempts of finished deliveries older
    # than this are pruned by `webhooks.prune`; 0 keeps everything.
    retention_days: int
    retention_interval_seconds: int
    # Optional port on which a worker node serves its own Prometheus metrics, for workers
    # on machines that do not share PROMETHEUS_MULTIPROC_DIR with the API.
    worker_metrics_port: int | None
    # PROMETHEUS_MULTIPROC_DIR: prometheus_client reads it too, from the process
    # environment, when it is imported (webhooks_api.metrics).
    metrics_dir: str | None
    # A subscription all of whose attempts failed for this long is disabled (0: never).
    disable_after_failing_seconds: int
    # Consecutive failed attempts after which `webhook.subscription.failing` is published
    # (0: no warning).
    failing_warning_after: int
    # Longest wait of `POST /subscriptions/{id}/test` for its attempt, holding a thread of
    # a web process.
    test_event_wait_seconds: int
    # Those requests waiting at once in one web process, in all and per tenant; past
    # either, 429. Each waiting one holds a thread of the process, which has more threads
    # than the first (docs/decisions/0013-test-event-waits.md).
    test_event_max_waiting: int
    test_event_max_waiting_per_tenant: int
    # Circuit breaker (off while the threshold is 0): opens after this many consecutive
    # failed attempts within the window, stays open this long, then lets one probe through.
    circuit_failure_threshold: int
    circuit_window_seconds: int
    circuit_open_seconds: int
    # The per-subscription rate limit (`max_per_second`) and the in-flight window; each can
    # be turned off where no Redis holds their state.
    rate_limit: bool
    in_flight_window: bool
    # The Redis of the breaker, the rate limit and the window (WEBHOOKS_REDIS_URL); None:
    # the broker's, when the broker is Redis.
    redis_url: str | None
    # Deliveries a tenant's bulk retry jobs queue per second, all its jobs together; a job
    # keeps the value of the API process that created it.
    bulk_retry_per_second: int
    # Flask's own switch (`flask --debug` sets it too): the debugger runs code from a browser.
    debug: bool
    # OpenTelemetry traces exported over OTLP (webhooks_api.tracing), from the standard
    # OTEL_* variables: off unless an exporter endpoint or OTEL_TRACES_EXPORTER=otlp says so.
    tracing: bool
    # The W3C `traceparent` header (naming the attempt's client span) sent to receivers.
    send_traceparent: bool

    @property
    def visibility_timeout_seconds(self) -> int:
        """Redis re-hands an unacked message of the retry queue (where every countdown of
        the schedule and every deferral travels) after this; it must outlast them.

        DESIGN.md: above twice the longest scheduled delay plus the longest request
        timeout plus a margin, so a held 6 h countdown is never handed out twice.
        """
        return 2 * max(self.retry_schedule) + MAX_TIMEOUT_SECONDS + 600

    @property
    def queue_visibility_timeouts(self) -> dict[str, int]:
        """The queues whose messages come back after the short timeout: every one but the
        retry queue (webhooks_api/messaging/redis_transport.py)."""
        return {name: self.short_visibility_timeout_seconds
                for name in WORKER_QUEUES if name != RETRY_QUEUE}

    @property
    def sqlalchemy_url(self) -> str | None:
        """DATABASE_URL for SQLAlchemy, pinned to psycopg2 (SQLAlchemy 2.1 defaults
        `postgresql://` to psycopg 3); Heroku-style `postgres://` is accepted too."""
        url = self.database_url
        if url is None:
            return None
        for scheme in ("postgres://", "postgresql://"):
            if url.startswith(scheme):
                return "postgresql+psycopg2://" + url[len(scheme):]
        return url

    @property
    def broker_is_redis(self) -> bool:
        return (self.broker_url or "").split(":", 1)[0] in REDIS_SCHEMES

    @property
    def broker_is_amqp(self) -> bool:
        return (self.broker_url or "").split(":", 1)[0] in AMQP_SCHEMES

    @property
    def protection_redis_url(self) -> str | None:
        """Where the circuit breaker, the rate limit and the in-flight window keep the
        state every worker shares: WEBHOOKS_REDIS_URL, else the broker when it is Redis
        (RabbitMQ has no such store); None when there is none."""
        return self.redis_url or (self.broker_url if self.broker_is_redis else None)

    @property
    def broker_transport(self) -> str | None:
        """Our Redis transport for redis:// and rediss://
        (webhooks_api/messaging/redis_transport.py);
        None lets the URL choose (RabbitMQ; a redis+socket:// URL always selects kombu's
        own, by its prefix)."""
        scheme = (self.broker_url or "").split(":", 1)[0]
        return REDIS_TRANSPORT if scheme in ("redis", "rediss") else None

    @property
    def broker_transport_options(self) -> dict:
        """Redis: the visibility timeout and the key prefix that lets deployments share one
        Redis (kombu's AMQP transport has neither). RabbitMQ: publisher confirms, as
        quorum queues want."""
        if self.broker_is_amqp:
            return {"confirm_publish": True}
        if not self.broker_is_redis:
            return {}
        # "priority": each poll asks the queues in the order the worker lists them (-Q),
        # so a worker takes fresh deliveries before retries (kombu's default rotates).
        options: dict = {"visibility_timeout": self.visibility_timeout_seconds,
                         "queue_visibility_timeouts": self.queue_visibility_timeouts,
                         "queue_order_strategy": "priority"}
        if self.broker_key_prefix:
            options["global_keyprefix"] = self.broker_key_prefix
        return options


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `environ` (default: the process environment)."""
    env_vars = os.environ if environ is None else environ
    env = env_vars.get("WEBHOOKS_ENV", "development").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"WEBHOOKS_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    production = env == "production"

    def get(name: str) -> str | None:
        value = env_vars.get(name)
        return value if value not in (None, "") else None

    def integer(name: str, default: int, minimum: int = 0) -> int:
        return _int(get(name) or str(default), name, minimum)

    keys = get("WEBHOOKS_ENCRYPTION_KEY")
    schedule = get("WEBHOOKS_RETRY_SCHEDULE")
    task_time_limit = integer("WEBHOOKS_TASK_TIME_LIMIT_SECONDS", MAX_TIMEOUT_SECONDS + 120, 1)
    settings = Settings(
        env=env,
        database_url=get("DATABASE_URL"),
        broker_url=get("CELERY_BROKER_URL"),
        retry_schedule=_schedule(schedule) if schedule else DEFAULT_RETRY_SCHEDULE,
        require_https=_bool(get("WEBHOOKS_REQUIRE_HTTPS") or str(production),
                            "WEBHOOKS_REQUIRE_HTTPS"),
        allow_private_targets=_bool(get("WEBHOOKS_ALLOW_PRIVATE_TARGETS") or str(not production),
                                    "WEBHOOKS_ALLOW_PRIVATE_TARGETS"),
        encryption_keys=tuple(k.strip() for k in keys.split(",") if k.strip())
        if keys else (DEVELOPMENT_ENCRYPTION_KEY,),
        max_payload_bytes=integer("WEBHOOKS_MAX_PAYLOAD_BYTES", 262144, 1024),
        ca_bundle=get("WEBHOOKS_CA_BUNDLE"),
        egress_proxy=_egress_proxy(proxy) if (proxy := get("WEBHOOKS_EGRESS_PROXY")) else None,
        sweep_margin_seconds=integer("WEBHOOKS_SWEEP_MARGIN_SECONDS", 120),
        sweep_interval_seconds=integer("WEBHOOKS_SWEEP_INTERVAL_SECONDS", 60, 1),
        claim_margin_seconds=integer("WEBHOOKS_CLAIM_MARGIN_SECONDS", 60, 1),
        worker_eta_task_limit=integer("WEBHOOKS_WORKER_ETA_TASK_LIMIT", 10000, 100),
        task_time_limit_seconds=task_time_limit,
        short_visibility_timeout_seconds=integer("WEBHOOKS_SHORT_VISIBILITY_TIMEOUT_SECONDS",
                                                 task_time_limit + 180, 1),
        metadata_max_bytes=integer("WEBHOOKS_METADATA_MAX_BYTES", 8192, 2),
        broker_key_prefix=get("WEBHOOKS_BROKER_KEY_PREFIX"),
        log_format=_choice(get("WEBHOOKS_LOG_FORMAT") or "text", "WEBHOOKS_LOG_FORMAT",
                           LOG_FORMATS),
        retention_days=integer("WEBHOOKS_RETENTION_DAYS", 30),
        retention_interval_seconds=integer("WEBHOOKS_RETENTION_INTERVAL_SECONDS", 3600, 1),
        worker_metrics_port=_int(get("WEBHOOKS_WORKER_METRICS_PORT"),
                                 "WEBHOOKS_WORKER_METRICS_PORT", 1)
        if get("WEBHOOKS_WORKER_METRICS_PORT") else None,
        metrics_dir=get("PROMETHEUS_MULTIPROC_DIR"),
        debug=_bool(get("FLASK_DEBUG") or "false", "FLASK_DEBUG"),
        disable_after_failing_seconds=integer("WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS",
                                              5 * 24 * 3600),
        failing_warning_after=integer("WEBHOOKS_FAILING_WARNING_AFTER", 10),
        test_event_wait_seconds=integer("WEBHOOKS_TEST_EVENT_WAIT_SECONDS", 25),
        test_event_max_waiting=integer("WEBHOOKS_TEST_EVENT_MAX_WAITING", 6, 1),
        test_event_max_waiting_per_tenant=integer("WEBHOOKS_TEST_EVENT_MAX_WAITING_PER_TENANT",
                                                  2, 1),
        circuit_failure_threshold=integer("WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD", 0),
        circuit_window_seconds=integer("WEBHOOKS_CIRCUIT_WINDOW_SECONDS", 60, 1),
        circuit_open_seconds=integer("WEBHOOKS_CIRCUIT_OPEN_SECONDS", 30, 1),
        rate_limit=_bool(get("WEBHOOKS_RATE_LIMIT") or "true", "WEBHOOKS_RATE_LIMIT"),
        in_flight_window=_bool(get("WEBHOOKS_IN_FLIGHT_WINDOW") or "true",
                               "WEBHOOKS_IN_FLIGHT_WINDOW"),
        redis_url=get("WEBHOOKS_REDIS_URL"),
        tracing=_tracing(get),
        send_traceparent=_bool(get("WEBHOOKS_SEND_TRACEPARENT") or "false",
                               "WEBHOOKS_SEND_TRACEPARENT"),
        bulk_retry_per_second=integer("WEBHOOKS_BULK_RETRY_PER_SECOND", 50, 1),
    )
    redis_scheme = (settings.redis_url or "redis").split(":", 1)[0]
    if redis_scheme not in REDIS_SCHEMES:
        raise ConfigError("WEBHOOKS_REDIS_URL must be a Redis URL (redis://, rediss:// or "
                          f"redis+socket://), got a {redis_scheme}:// one")
    _check_encryption_keys(settings.encryption_keys)
    if settings.short_visibility_timeout_seconds <= task_time_limit:
        raise ConfigError(
            "WEBHOOKS_SHORT_VISIBILITY_TIMEOUT_SECONDS must be above "
            f"WEBHOOKS_TASK_TIME_LIMIT_SECONDS ({task_time_limit}): a worker holds a message "
            "until its task ends, and a message handed out again meanwhile runs twice, got "
            f"{settings.short_visibility_timeout_seconds}")
    if settings.ca_bundle and not os.path.exists(settings.ca_bundle):
        raise ConfigError(f"WEBHOOKS_CA_BUNDLE names {settings.ca_bundle!r}, which does not exist")
    if production:
        check_production(settings)
    return settings


def _tracing(get: Callable[[str], str | None]) -> bool:
    """Whether to export traces, from the standard OTEL_* variables (the SDK reads the rest
    of them itself: headers, timeout, sampler, resource, batching).

    Off unless configured: the OpenTelemetry default exporter is OTLP to localhost, which a
    deployment without a collector would try and fail every few seconds. On with an OTLP
    endpoint set, or with OTEL_TRACES_EXPORTER=otlp (then the SDK's default endpoint);
    OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true keeps it off all the same. Only
    OTLP over HTTP/protobuf is shipped: another exporter or protocol would leave traces
    silently unsent, so it is refused.
    """
    disabled = _bool(get("OTEL_SDK_DISABLED") or "false", "OTEL_SDK_DISABLED")
    exporter = (get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if exporter not in ("", "otlp", "none"):
        raise ConfigError("OTEL_TRACES_EXPORTER: traces are exported over OTLP only (otlp, "
                          f"or none for no traces), got {exporter!r}")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = get(name)
        if protocol is not None and protocol.strip().lower() != "http/protobuf":
            raise ConfigError(f"{name}: traces are exported over HTTP with protobuf only "
                              f"(http/protobuf, port 4318), got {protocol!r}")
    endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or get("OTEL_EXPORTER_OTLP_ENDPOINT")
    wanted = exporter == "otlp" or (exporter == "" and endpoint is not None)
    return wanted and not disabled


def _check_encryption_keys(keys: tuple[str, ...]) -> None:
    """A bad key must stop the start-up, not the first subscription that needs it."""
    from cryptography.fernet import Fernet

    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                f"WEBHOOKS_ENCRYPTION_KEY: key {position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes; make one with `python -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None


def protections_without_redis(settings: Settings) -> list[str]:
    """The endpoint protections these settings turn on that have no Redis for their state,
    each with the setting that turns it off."""
    if settings.protection_redis_url:
        return []
    turned_on = (
        (settings.circuit_failure_threshold > 0,
         "the circuit breaker (WEBHOOKS_CIRCUIT_FAILURE_THRESHOLD=0 turns it off)"),
        (settings.rate_limit,
         "the per-subscription rate limit (WEBHOOKS_RATE_LIMIT=off turns it off)"),
        (settings.in_flight_window,
         "the in-flight window (WEBHOOKS_IN_FLIGHT_WINDOW=off turns it off)"),
    )
    return [feature for on, feature in turned_on if on]


def check_worker_redis(settings: Settings) -> None:
    """A worker must not run its protections silently off: refuse to start instead."""
    if missing := protections_without_redis(settings):
        raise ConfigError(
            "the broker is not Redis and WEBHOOKS_REDIS_URL is not set, so there is no Redis "
            "for " + "; ".join(missing) + ": set WEBHOOKS_REDIS_URL to a Redis "
            "(redis://host:6379/0) or turn them off")


def production_errors(settings: Settings) -> list[str]:
    """Every unsafe setting of a production deployment, each named."""
    errors = []
    if not settings.database_url:
        errors.append("DATABASE_URL must be set in production")
    if not settings.broker_url:
        errors.append("CELERY_BROKER_URL must be set in production")
    if DEVELOPMENT_ENCRYPTION_KEY in settings.encryption_keys:
        errors.append("WEBHOOKS_ENCRYPTION_KEY must be set to a key of your own in production")
    if settings.debug:
        errors.append("FLASK_DEBUG must be off in production (the debugger runs arbitrary code)")
    if not settings.require_https:
        errors.append("WEBHOOKS_REQUIRE_HTTPS must stay on in production")
    if settings.allow_private_targets:
        errors.append("WEBHOOKS_ALLOW_PRIVATE_TARGETS must stay off in production")
    return errors


def check_production(settings: Settings) -> None:
    """Refuse to run production with a setting that would lose data or leak secrets."""
    if errors := production_errors(settings):
        raise ConfigError("unsafe production settings: " + "; ".join(errors))


def current_settings() -> Settings:
    """The settings of the Flask app in context (create_app put them there)."""
    from flask import current_app

    return current_app.config["WEBHOOKS_SETTINGS"]
