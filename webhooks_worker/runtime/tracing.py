"""The worker's traces (webhooks_api.tracing): the SDK started when a worker starts and
flushed when it stops, and the client span of each delivery's POST.

Celery's `worker_init` starts it in the worker's main process, for every pool: under the
gevent pool (the Procfile's) that process runs the tasks, and `worker_process_init` never
fires; a prefork pool's children inherit it (the span processor restarts its thread after
the fork). `worker_shutdown` exports what is buffered.

The POST's span is ours, not urllib3's instrumentation, so that it says what an operator
needs and nothing a URL, a header or a payload may hide: the receiver's host, port and
scheme (never the path or query: either may hold a token), the HTTP status or the
attempt's error class, the attempt number, the tenant, subscription, event and delivery
ids. With WEBHOOKS_SEND_TRACEPARENT the request carries the W3C `traceparent` that names
this span as the receiver's parent (only `traceparent`: a publisher's `tracestate` is its
vendors' business, not the receiver's); it is stored with the attempt's request headers.
While tracing is off `post_span` returns a shared no-op: the hot path pays one call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from celery.signals import worker_init, worker_shutdown

from webhooks_api import tracing
from webhooks_api.config import ConfigError, Settings, worker_refusal
from webhooks_api.domain.urls import InvalidUrlError, parse_target

logger = logging.getLogger(__name__)

SERVICE_NAME = "webhooks-worker"
# The tracer of the deliveries' client spans, once tracing started in this process.
_tracer = None


class _Untraced:
    """What `post_span` gives while tracing is off: nothing recorded, nothing paid."""

    def __enter__(self) -> _Untraced:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def record(self, result) -> None:
        return None


_UNTRACED = _Untraced()


class _Recorder:
    """Puts the attempt's outcome on its span (HTTP semantic conventions, and ours)."""

    def __init__(self, span):
        self._span = span

    def record(self, result) -> None:
        """`result`: the attempt's HttpResult."""
        from opentelemetry.trace import Status, StatusCode

        if result.status_code is not None:
            self._span.set_attribute("http.response.status_code", result.status_code)
        if result.succeeded:
            return
        if result.error_class:
            self._span.set_attribute("webhooks.error_class", result.error_class)
        error = result.error_class or str(result.status_code)
        self._span.set_attribute("error.type", error)
        self._span.set_status(Status(StatusCode.ERROR, error))


def post_span(claim, delivery_id: str, attempt_number: int, trigger: str,
              headers: dict[str, str], settings: Settings):
    """A context for one attempt's POST: `with post_span(...) as span:`, POST, then
    `span.record(result)`. Adds `traceparent` to `headers` when it is to be sent."""
    if _tracer is None:
        return _UNTRACED
    return _client_span(_tracer, claim, delivery_id, attempt_number, trigger, headers,
                        settings.send_traceparent)


@contextmanager
def _client_span(tracer, claim, delivery_id: str, attempt_number: int, trigger: str,
                 headers: dict[str, str], send_traceparent: bool) -> Iterator[_Recorder]:
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attributes = {
        "http.request.method": "POST",
        "webhooks.tenant_id": claim.tenant_id,
        "webhooks.subscription_id": claim.subscription_id,
        "webhooks.event_id": claim.event_id,
        "webhooks.event_type": claim.event_type,
        "webhooks.delivery_id": delivery_id,
        "webhooks.attempt_number": attempt_number,
        "webhooks.trigger": trigger,
        **_target_attributes(claim.url),
    }
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT,
                                      attributes=attributes) as span:
        if send_traceparent:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            headers["traceparent"] = carrier["traceparent"]
        yield _Recorder(span)


def _target_attributes(url: str) -> dict:
    """The receiver as the span shows it: host, port and scheme, never path or query."""
    try:
        target = parse_target(url)
        return {"server.address": target.host, "server.port": target.effective_port,
                "url.scheme": target.scheme}
    except (InvalidUrlError, KeyError):  # the POST records what is wrong with it
        return {}


@worker_init.connect
def _start_tracing(sender=None, **_) -> None:
    global _tracer
    settings = sender.app.flask_app.config["WEBHOOKS_SETTINGS"]
    try:
        started = tracing.start(settings, SERVICE_NAME)
    except ConfigError as error:
        raise worker_refusal(error) from None
    if started:
        from opentelemetry import trace

        _tracer = trace.get_tracer(__name__)
    elif settings.send_traceparent:
        logger.warning("WEBHOOKS_SEND_TRACEPARENT is on but tracing is off (no OTLP "
                       "endpoint configured): deliveries carry no traceparent")


@worker_shutdown.connect
def _flush_spans(**_) -> None:
    tracing.stop()
