"""OpenTelemetry traces of the web and worker processes: one trace from `POST /publish` (or a
`webhooks.publish` message) through the fan-out to every delivery attempt's POST.

Off unless configured (`Settings.tracing`, from the standard OTEL_* variables): off, this
module imports nothing of OpenTelemetry and installs no tracer provider, so no
instrumentation's hooks are connected and a delivery's span helper is a no-op
(webhooks_worker.runtime.tracing). On, each process exports its spans over OTLP
(HTTP/protobuf) through a BatchSpanProcessor, whose thread (a greenlet under the gevent
pool) does the sending; the SDK reads the rest of its OTEL_* settings itself (endpoint,
headers, timeout, sampler, resource, batching).

A worker runs the Celery instrumentation: a span for every task run and every message sent,
the context carried in the message's headers. The web runs the Flask instrumentation (a
server span per request, continuing the caller's trace when the request carries a
`traceparent`) and carries the request's context in the headers of the messages it sends
itself: the Celery instrumentation (0.66) handles a message of a task its process does not
define, which is every message the web sends, by starting a producer span it never ends and
attaching a context it never detaches, so the worker's spans would hang from a span no one
exports.

`start` runs once per process after any fork, when the process is ready to serve
(gunicorn's `post_worker_init`, Celery's `worker_init`): a span processor's thread started
before a fork would not run in the child.
"""

from __future__ import annotations

import logging

from celery.signals import before_task_publish

from webhooks_api.config import ConfigError, Settings

logger = logging.getLogger(__name__)

# The process's tracer provider once `start` installed it.
_provider = None


def start(settings: Settings, service_name: str, flask_app=None) -> bool:
    """Export this process's spans: a worker's tasks and messages, or the web's
    `flask_app` requests and the context of the messages they send. False, having done
    nothing, while tracing is off. `service_name` is the resource's unless
    OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name one."""
    global _provider
    if not settings.tracing:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise ConfigError(
            "tracing is configured (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER) but "
            f"OpenTelemetry is not installed ({error.name}): install the otel extra, "
            "pip install 'webhooks-service[otel]'") from None
    if _provider is None:
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service_name}))
        _provider = TracerProvider(resource=resource)
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
        if flask_app is None:
            CeleryInstrumentor().instrument(tracer_provider=_provider)
        else:
            FlaskInstrumentor.instrument_app(flask_app, tracer_provider=_provider)
            before_task_publish.connect(_carry_context, weak=False)
        logger.info("tracing on: spans of %s exported over OTLP",
                    resource.attributes[SERVICE_NAME])
    return True


def _carry_context(headers: dict | None = None, **_) -> None:
    """The current span's context (the request's) into a message's headers, where the
    worker's Celery instrumentation reads its parent."""
    from opentelemetry.propagate import inject

    if headers is not None:
        inject(headers)


def stop() -> None:
    """Export the spans still buffered and stop exporting; at the process's exit."""
    if _provider is not None:
        _provider.shutdown()
