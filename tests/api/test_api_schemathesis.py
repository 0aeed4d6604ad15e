"""Property-based run of schemathesis against the served /openapi.json, bounded in time.

For every operation it sends the documented examples, then generates valid and invalid
requests (authenticated with a real
key from the CLI) and checks that none answers 5xx and that every response (status code,
content type, headers and body) matches what the document says. Requests on paths with
ids are also replayed against real objects, so generated bodies reach the services.

Messages to the broker go to an in-memory transport during the run: generated
subscriptions may name any public address, and no worker may ever send to one.

A second run goes through the web server as the Procfile starts it, with long query
strings and long headers on every operation: what gunicorn refuses before the app sees it
(414, 431) must be documented and in the error shape too. Its messages go to a broker
prefix no worker consumes.

The portal's operations (/api/v1/portal) are the same views as those of /api/v1/webhooks,
mounted again for another credential (tests/api/test_api_portal.py checks that each is
the API's own view): they are not fuzzed a second time.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import schemathesis
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.support import processes
from tests.support.api_support import create_subscription, seed_deliveries
from tests.support.engine_support import delete_broker_keys, new_prefix
from webhooks_api.extensions import db

MAX_EXAMPLES = 40
PORTAL_PATHS = "/api/v1/portal/"
LONG_REQUEST_EXAMPLES = 10
# Below, at and past the web server's limits of 8190 bytes (request line, header field).
PADDING_SIZES = (1000, 7000, 8190, 20000)
# A schema-valid request may still break a rule the document cannot express (an opaque
# cursor, an event type that is not in the catalogue, a URL that does not resolve): those
# answer a documented 422, which this check would count as a failure.
EXCLUDED_CHECKS = [positive_data_acceptance]
# A padded request breaks the document on purpose (a cursor no schema can match, a header
# past the server's limit); what it answers is checked against the document all the same,
# but the list of statuses that count as "rejected" does not know 414 and 431.
PADDED_EXCLUDED_CHECKS = [*EXCLUDED_CHECKS, negative_data_rejection]


def make_objects(app, client, tenant) -> dict[str, str]:
    """Fresh objects of the tenant for the id routes (an earlier operation may have deleted
    them). The app context closes again, so each request gets its own session."""
    event_type = f"acme.fuzz.t{uuid.uuid4().hex[:8]}"
    subscription = create_subscription(client, tenant)
    with app.app_context():
        (delivery_id,) = seed_deliveries(db.session, tenant["id"], subscription["id"],
                                         attempts=1)
    registered = client.post("/api/v1/webhooks/events", headers=tenant["headers"], json={
        "name": event_type, "description": "for the fuzzer",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}})
    assert registered.status_code == 201
    portal_session = client.post("/api/v1/webhooks/portal-sessions",
                                 headers=tenant["headers"], json={})
    assert portal_session.status_code == 201
    now = datetime.now(UTC)
    bulk_retry = client.post("/api/v1/webhooks/bulk-retries", headers=tenant["headers"], json={
        "status": "failed", "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat()})
    assert bulk_retry.status_code == 202, bulk_retry.json
    return {"subscription_id": subscription["id"], "delivery_id": delivery_id,
            "event_type": event_type, "session_id": portal_session.json["id"],
            "bulk_retry_id": bulk_retry.json["id"]}


def fuzzed_operations(schema) -> list:
    """Every operation of the document but the portal's (see the module docstring)."""
    return [operation for operation in (result.ok() for result in schema.get_all_operations())
            if not operation.path.startswith(PORTAL_PATHS)]


def fuzz(strategy, mode: GenerationMode, headers: dict, real_ids: dict,
         statuses: Counter) -> None:
    """Send cases drawn from `strategy`; each with an id is sent again with a real one.
    Raises with schemathesis's report (and a curl line) on the first failure."""

    def send(case):
        response = case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)
        statuses[response.status_code] += 1

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        send(case)
        if case.path_parameters:
            case.path_parameters = {name: real_ids[name] for name in case.path_parameters}
            send(case)

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation's request can break the document (a health probe, an
        # id that may be any string): there is no negative case to send.
        assert mode == GenerationMode.NEGATIVE


def test_api_matches_its_openapi_document(app, client, tenant, monkeypatch):
    monkeypatch.setitem(app.extensions, "celery", Celery("schemathesis", broker="memory://"))
    # No worker takes the test events: `POST .../test` answers at once with no attempt.
    monkeypatch.setitem(app.config, "WEBHOOKS_SETTINGS", replace(
        app.config["WEBHOOKS_SETTINGS"], test_event_wait_seconds=0))
    headers = {"Authorization": tenant["headers"]["Authorization"]}
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    # The key is sent with every case; it is not a parameter to generate or to break.
    schema.config.generation.update(with_security_parameters=False)
    operations = fuzzed_operations(schema)
    assert len(operations) == 27

    statuses: dict[str, Counter] = defaultdict(Counter)
    for operation in operations:
        real_ids = make_objects(app, client, tenant)
        strategies = [(GenerationMode.POSITIVE, strategy)
                      for strategy in schema.get_strategies_from_examples(operation)]
        strategies += [(mode, operation.as_strategy(generation_mode=mode))
                       for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        for mode, strategy in strategies:
            fuzz(strategy, mode, headers, real_ids, statuses[operation.label])

    # The run reached the services: every operation answered a success at least once.
    for label, counts in statuses.items():
        assert any(200 <= status < 300 for status in counts), (label, dict(counts))


def test_served_api_documents_what_long_requests_get(app, client, tenant, test_env):
    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env),
           "WEBHOOKS_TEST_EVENT_WAIT_SECONDS": "0"}
    auth = {"Authorization": tenant["headers"]["Authorization"]}
    statuses: Counter = Counter()
    try:
        with processes.web(env, workers=1) as base:
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
            schema.config.generation.update(with_security_parameters=False)
            for operation in fuzzed_operations(schema):
                real_ids = make_objects(app, client, tenant)
                send_padded(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                            base, auth, real_ids, statuses)
    finally:
        delete_broker_keys(env)
    # The run met both limits, and requests below them reached the app.
    assert statuses[414] and statuses[431] and statuses[200], dict(statuses)


def send_padded(strategy, base: str, auth: dict, real_ids: dict, statuses: Counter) -> None:
    """Send cases with one query parameter or one header padded to each of PADDING_SIZES;
    raises with schemathesis's report on an undocumented status or shape."""

    @settings(max_examples=LONG_REQUEST_EXAMPLES, deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy, size=st.sampled_from(PADDING_SIZES),
           padded=st.sampled_from(("query", "header")))
    def run(case, size, padded):
        case.path_parameters = {name: real_ids[name] for name in case.path_parameters or {}}
        headers = dict(auth)
        if padded == "query":
            case.query = {**(case.query or {}), "cursor": "x" * size}
        else:
            headers["X-Padding"] = "x" * size
        response = case.call_and_validate(base_url=base, headers=headers,
                                          excluded_checks=PADDED_EXCLUDED_CHECKS)
        statuses[response.status_code] += 1

    run()
