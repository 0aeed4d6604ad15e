"""OpenTelemetry end to end: the Procfile's web line and a real worker, exporting over OTLP
to a collector on 127.0.0.1, make one trace from `POST /publish` to the receiver's answer,
through a retried delivery; the `traceparent` each attempt carried names the exported
client span of that attempt, and no span shows the URL's path or query, a header or the
payload. And when the standard OTEL_* variables turn tracing on (docs/operations.md)."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support import processes
from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    isolated_worker,
    new_prefix,
    wait_for_delivery,
)
from tests.support.receiver import Reply
from webhooks_api.config import ConfigError, load_settings

API = "/api/v1/webhooks"
# The publisher's own trace, which the request to POST /publish carries on.
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
SPAN_KIND_CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SpanKind


@dataclasses.dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict


def _values(attributes) -> dict:
    """OTLP key-values as a dict of plain values (a list or map as its protobuf message)."""
    return {item.key: getattr(item.value, item.value.WhichOneof("value") or "string_value")
            for item in attributes}


class Collector:
    """An OTLP/HTTP trace endpoint (what a collector listens on at :4318) that keeps every
    span it is sent."""

    def __init__(self):
        self.spans: list[ExportedSpan] = []
        lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                exported = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource in exported.resource_spans:
                        service = _values(resource.resource.attributes)["service.name"]
                        collector.spans += [
                            ExportedSpan(service, span.name, span.kind, span.trace_id.hex(),
                                         span.span_id.hex(), span.parent_span_id.hex(),
                                         _values(span.attributes))
                            for scope in resource.scope_spans for span in scope.spans]
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _lineage(span: ExportedSpan, spans: list[ExportedSpan]) -> list[tuple[str, str]]:
    """(service, name) of `span` and of each exported ancestor, nearest first."""
    by_id = {exported.span_id: exported for exported in spans}
    chain = [span]
    while chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return [(exported.service, exported.name) for exported in chain]


def test_one_trace_from_publish_through_a_retry_to_the_receivers_answer(
        client, tenant, receiver, session, test_env):
    collector = Collector()
    prefix = new_prefix(test_env)
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": prefix,
           "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
           # No batch leaves on a timer: every span the collector gets was sent at exit.
           "OTEL_BSP_SCHEDULE_DELAY": "600000",
           "WEBHOOKS_SEND_TRACEPARENT": "on"}
    subscription = create_subscription(client, tenant, f"{receiver.url}?token=url-s3cret",
                                       ["invoice.*"], headers={"X-Api-Key": "header-s3cret"})
    replies = iter([Reply(500)])
    receiver.respond = lambda request: next(replies, Reply(200))
    try:
        with isolated_worker(test_env, env, prefix=prefix), \
                processes.web(env, workers=1) as base:
            published = requests.post(
                f"{base}{API}/publish", timeout=10, json={
                    "event_type": "invoice.paid", "data": {"card": "payload-s3cret"}},
                headers={**tenant["headers"],
                         "traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"})
            assert published.status_code == 202, published.text
            delivery = wait_for_delivery(session, lambda d: d.status == "success",
                                         timeout=30, message="the retried delivery")
    finally:  # both processes have stopped: what they held is exported, or lost
        collector.stop()

    # Everything but the start-up probes of the web (a trace each) is the caller's trace.
    spans = [span for span in collector.spans if span.name != "GET /healthz"]
    assert {span.trace_id for span in spans} == {CALLER_TRACE_ID}, "one trace"
    posts = sorted((span for span in spans if span.name == "POST"),
                   key=lambda span: span.attributes["webhooks.attempt_number"])
    first_attempt = [("webhooks-worker", "POST"), ("webhooks-worker", "run/webhooks.deliver"),
                     ("webhooks-worker", "apply_async/webhooks.deliver"),
                     ("webhooks-worker", "run/webhooks.publish"),
                     ("webhooks-api", f"POST {API}/publish")]
    assert _lineage(posts[0], spans) == first_attempt
    assert _lineage(posts[1], spans) == [
        ("webhooks-worker", "POST"), ("webhooks-worker", "run/webhooks.deliver"),
        ("webhooks-worker", "apply_async/webhooks.deliver"),  # the retry's message
        *first_attempt[1:]]
    server_span = next(span for span in spans if span.name == f"POST {API}/publish")
    assert server_span.parent_id == CALLER_SPAN_ID

    ids = {"webhooks.tenant_id": tenant["id"], "webhooks.subscription_id": subscription["id"],
           "webhooks.event_id": published.json()["event_id"],
           "webhooks.delivery_id": delivery.id, "http.request.method": "POST",
           "server.address": "127.0.0.1", "server.port": receiver.server.server_address[1],
           "url.scheme": "http"}
    assert [span.kind for span in posts] == [SPAN_KIND_CLIENT] * 2
    assert [{name: span.attributes.get(name) for name in
             (*ids, "webhooks.attempt_number", "http.response.status_code", "error.type")}
            for span in posts] == [
        {**ids, "webhooks.attempt_number": 1, "http.response.status_code": 500,
         "error.type": "500"},
        {**ids, "webhooks.attempt_number": 2, "http.response.status_code": 200,
         "error.type": None}]

    # Each attempt told the receiver its own client span as the parent.
    received = receiver.posts()
    assert len(received) == 2
    assert [request.headers["traceparent"].split("-")[1:3] for request in received] == \
        [[CALLER_TRACE_ID, span.span_id] for span in posts]
    # ...and the attempts in the API show it: each leads to its span.
    assert [attempt.request_headers["traceparent"] for attempt in
            attempts_of(session, delivery.id)] == \
        [request.headers["traceparent"] for request in received]

    shown = repr([span.attributes for span in spans])
    for hidden in ("url-s3cret", "token=", "/hook", "header-s3cret", "payload-s3cret",
                   tenant["api_key"]):
        assert hidden not in shown, f"{hidden!r} is in a span's attributes"


ENDPOINT = "http://collector:4318"


@pytest.mark.parametrize("environ, on", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),  # the SDK's default endpoint
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp"}, True),
])
def test_tracing_is_off_unless_configured(environ, on):
    assert load_settings(environ).tracing is on


@pytest.mark.parametrize("environ, refused", [
    ({"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER: traces are exported over OTLP"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
     "OTEL_EXPORTER_OTLP_PROTOCOL: traces are exported over HTTP with protobuf only"),
    ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: traces are exported over HTTP with protobuf"),
])
def test_an_exporter_that_is_not_shipped_is_refused(environ, refused):
    with pytest.raises(ConfigError, match=refused):
        load_settings(environ)


# A worker's and a web process's modules, tracing started as they start it, with the
# process's environment unset: no tracer provider, no instrumentation, no exporter (redis-py
# imports parts of OpenTelemetry by itself when it is installed), and a delivery's span is
# the shared no-op.
_OFF = """
import sys
from types import SimpleNamespace
from webhooks_api import tracing
from webhooks_api.config import load_settings
from webhooks_api.http import gunicorn_conf
from webhooks_worker.delivery import attempt
from webhooks_worker.runtime import tracing as worker_tracing

settings = load_settings({"WEBHOOKS_SEND_TRACEPARENT": "on"})
assert tracing.start(settings, "webhooks-api", flask_app=object()) is False
worker_tracing._start_tracing(SimpleNamespace(app=SimpleNamespace(
    flask_app=SimpleNamespace(config={"WEBHOOKS_SETTINGS": settings}))))
headers = {}
with worker_tracing.post_span(None, "dlv_1", 1, "automatic", headers, settings) as span:
    span.record(None)
assert span is worker_tracing._UNTRACED and headers == {}
from opentelemetry import trace
assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
loaded = sorted(name for name in sys.modules if name.startswith((
    "opentelemetry.instrumentation", "opentelemetry.sdk.trace", "opentelemetry.exporter")))
assert loaded == [], loaded
"""


def test_off_no_tracer_provider_no_instrumentation_and_a_delivery_pays_nothing():
    result = subprocess.run([sys.executable, "-c", _OFF], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "WEBHOOKS_SEND_TRACEPARENT is on but tracing is off" in result.stderr
