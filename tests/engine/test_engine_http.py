"""The POST itself: custom headers, no redirects, TLS verified, environment proxies
ignored, a wall-clock deadline against dripping receivers, a capped response, and every
kind of "no response" classified. Through the real worker, plus the hardened client
called directly where a worker adds nothing."""

from __future__ import annotations

import ssl
import time

import psycopg2
import pytest

from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    isolated_worker,
    publish_via_api,
    wait_for_delivery,
    wait_until_recorded,
)
from tests.support.helpers import wait_for
from tests.support.odd_servers import (
    NxdomainResolver,
    PartlySilentResolver,
    SilentResolver,
    SlowRelay,
    drip,
    endless_body,
    self_signed_certificate,
)
from tests.support.receiver import Receiver, Reply
from webhooks_dev.embedded import free_port
from webhooks_worker.delivery import http_client

SLOW_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def _first_then_ok(first: Reply):
    """The first request gets `first`, the retry a plain 200 (so no attempt lingers)."""
    def respond(request, _seen=[]):  # noqa: B006 (one list per call of _first_then_ok)
        _seen.append(request)
        return first if len(_seen) == 1 else Reply()
    return respond


def _first_attempt(session, timeout=40):
    delivery = wait_for_delivery(session, lambda d: d.attempt_count >= 1, timeout=timeout,
                                 message="the first attempt to be recorded")
    return delivery, attempts_of(session, delivery.id)[0]


def test_a_redirect_is_a_failure_and_is_not_followed(app, client, tenant, receiver, worker,
                                                     session):
    receiver.respond = _first_then_ok(
        Reply(302, b"", {"Location": f"{receiver.base_url}/elsewhere"}))
    create_subscription(client, tenant, receiver.url)
    publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    first, second = attempts_of(session, delivery.id)
    assert first.response_status == 302 and second.response_status == 200
    assert all(request.path == "/hook" for request in receiver.requests)
    assert [r.method for r in receiver.requests] == ["POST", "POST"]


@pytest.mark.parametrize("writer", [
    drip(SLOW_HEAD),                                                     # status line, headers
    lambda wfile: (wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
                   wfile.flush(), drip(b"x" * 60)(wfile)),              # a body with no end
], ids=["dripping-headers", "dripping-body"])
def test_a_dripping_receiver_is_cut_at_timeout_seconds(app, client, tenant, receiver, worker,
                                                       session, writer):
    receiver.respond = _first_then_ok(Reply(raw=writer))
    create_subscription(client, tenant, receiver.url, timeout_seconds=5)
    publish_via_api(client, tenant)

    delivery, attempt = _first_attempt(session)
    assert attempt.error_class == "timeout" and attempt.response_status is None
    assert 5000 <= attempt.duration_ms < 8000
    assert wait_for_delivery(session, lambda d: d.status == "success").attempt_count == 2


def test_a_huge_response_is_capped(app, client, tenant, receiver, worker, session):
    written: list[int] = []
    receiver.respond = lambda request: Reply(raw=endless_body(written))
    create_subscription(client, tenant, receiver.url, timeout_seconds=5)
    publish_via_api(client, tenant)

    delivery, attempt = _first_attempt(session)
    # Read up to 64 KiB then hung up on: a success well before the deadline.
    assert delivery.status == "success" and attempt.response_status == 200
    assert attempt.duration_ms < 4000
    assert attempt.response_body == "x" * 4096
    wait_for(lambda: written, message="the receiver to stop writing")
    assert written[0] < 256 * 1024 * 1024


def test_connection_refused_is_retried_then_failed(app, client, tenant, worker, session):
    create_subscription(client, tenant, f"http://127.0.0.1:{free_port()}/hook")
    publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "failed", timeout=60)
    attempts = attempts_of(session, delivery.id)
    assert [a.error_class for a in attempts] == ["connection_error"] * 4
    assert all(a.response_status is None and a.error_message for a in attempts)
    assert delivery.last_error.startswith("connection_error: ")


def test_a_response_with_nul_bytes_is_recorded(app, client, tenant, receiver, worker,
                                               session):
    receiver.respond = lambda request: Reply(200, b"a\x00b")
    create_subscription(client, tenant, receiver.url)
    publish_via_api(client, tenant)

    delivery = wait_for_delivery(session, lambda d: d.status == "success")
    assert attempts_of(session, delivery.id)[0].response_body == "a\ufffdb"


def test_tls_is_verified(app, client, tenant, worker, session, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls_receiver = Receiver(ssl_context=context).start()
    try:
        create_subscription(client, tenant, tls_receiver.url)
        publish_via_api(client, tenant)
        delivery, attempt = _first_attempt(session)
        assert attempt.error_class == "tls_error"
        assert "CERTIFICATE_VERIFY_FAILED" in attempt.error_message
        assert tls_receiver.posts() == []

        # The same server passes with its certificate in WEBHOOKS_CA_BUNDLE.
        result = http_client.post(http_client.delivery_session(True), tls_receiver.url, b"{}",
                           {"Content-Type": "application/json"}, 5, ca_bundle=str(cert))
        assert result.succeeded and len(tls_receiver.posts()) == 1
    finally:
        tls_receiver.stop()


def test_a_dripping_tls_handshake_is_cut_at_the_deadline(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls_receiver = Receiver(ssl_context=context).start()
    relay = SlowRelay(tls_receiver.server.server_address[1], seconds_per_byte=0.2)
    try:
        start = time.monotonic()
        result = http_client.post(http_client.delivery_session(True), f"https://127.0.0.1:{relay.port}/hook",
                           b"{}", {}, 2, ca_bundle=str(cert))
        assert result.error_class == "timeout"
        assert time.monotonic() - start < 4
    finally:
        relay.close()
        tls_receiver.stop()


def test_private_addresses_are_refused_at_send_time(receiver):
    """With WEBHOOKS_ALLOW_PRIVATE_TARGETS off, the resolved address is checked again."""
    result = http_client.post(http_client.delivery_session(False), receiver.url, b"{}", {}, 5)
    assert result.error_class == "forbidden_address"
    assert receiver.requests == []


def test_no_transaction_is_open_during_the_http_call(app, client, tenant, receiver, worker,
                                                     test_env):
    open_transactions = []

    def respond(request):
        with psycopg2.connect(test_env["DATABASE_URL"]) as connection, \
                connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                           "AND state LIKE 'idle in transaction%'")
            open_transactions.append(cursor.fetchone()[0])
        connection.close()
        return Reply()

    receiver.respond = respond
    create_subscription(client, tenant, receiver.url)
    publish_via_api(client, tenant)
    wait_until_recorded(app)
    assert open_transactions == [0]


@pytest.fixture(scope="module")
def hostile_environment_worker(app, test_env, tmp_path_factory):
    """A worker whose environment names a dead proxy and whose resolver answers NXDOMAIN."""
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    proxies = {name: dead_proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                             "http_proxy", "https_proxy", "all_proxy")}
    with NxdomainResolver(tmp_path_factory.mktemp("dns")) as resolver, isolated_worker(
        test_env, {**proxies, "NO_PROXY": "", "no_proxy": "",
                   "WEBHOOKS_RETRY_SCHEDULE": "3600"},
        wrapper=resolver.wrapper(),
    ) as worker:
        yield worker, resolver


def test_proxies_from_the_environment_are_ignored(app, client, tenant, receiver, session,
                                                  hostile_environment_worker):
    worker, _ = hostile_environment_worker
    create_subscription(client, tenant, receiver.url)
    worker.publish(event_type="invoice.created", event_data={"n": 1}, tenant_id=tenant["id"])

    delivery, attempt = _first_attempt(session)
    assert attempt.response_status == 200 and delivery.status == "success"
    assert len(receiver.posts()) == 1


def test_a_name_that_does_not_resolve_is_a_dns_error(app, client, tenant, session,
                                                     hostile_environment_worker):
    worker, resolver = hostile_environment_worker
    create_subscription(client, tenant, "http://no-such-receiver.invalid/hook")
    worker.publish(event_type="invoice.created", event_data={"n": 1}, tenant_id=tenant["id"])

    delivery, attempt = _first_attempt(session)
    assert attempt.error_class == "dns_error"
    assert delivery.status == "retrying"
    assert "no-such-receiver.invalid" in resolver.names  # our resolver was asked, no other


def test_a_resolver_that_never_answers_ends_the_attempt_at_timeout_seconds(
        app, client, tenant, session, test_env, tmp_path):
    """Name resolution runs under the attempt's deadline: the system resolver would wait
    150 s for this server, the subscription allows 5 s (the least it may)."""
    with SilentResolver(tmp_path) as resolver, isolated_worker(
            test_env, {"WEBHOOKS_RETRY_SCHEDULE": "3600"}, wrapper=resolver.wrapper()) as worker:
        create_subscription(client, tenant, "http://hangs.example.test/hook",
                            timeout_seconds=5)
        published = time.monotonic()
        worker.publish(event_type="invoice.created", event_data={"n": 1},
                       tenant_id=tenant["id"])

        delivery, attempt = _first_attempt(session, timeout=30)
        recorded_after = time.monotonic() - published
    assert attempt.error_class == "timeout" and attempt.response_status is None
    assert 5000 <= attempt.duration_ms < 8000
    assert recorded_after < 20  # publish, fan-out and the 5 s attempt, with room to spare
    assert delivery.status == "retrying"
    assert "hangs.example.test" in resolver.names  # it was asked, and never answered


@pytest.mark.parametrize("shape", [
    {"concurrency": 40},
    # --autoscale: the process may grow to 40 deliveries in flight; it starts with 12.
    {"concurrency": 1, "extra_args": ["--autoscale=40,12"]},
], ids=["concurrency", "autoscale"])
def test_a_receiver_whose_name_servers_never_answer_holds_up_no_other_receiver(
        app, client, tenant, session, receiver, test_env, tmp_path, shape):
    """Under gevent each lookup runs in a thread of the hub's pool, and one that is never
    answered keeps its thread until the system resolver gives up (150 s here), after its
    attempt has ended at its deadline. The window lets a new receiver have 10 attempts in
    flight: as many lookups as gevent's default pool has threads, and every delivery of the
    process to a receiver named by hostname would wait behind them."""
    port = receiver.server.server_address[1]
    with PartlySilentResolver(tmp_path, {"ok.example.test"}) as resolver, isolated_worker(
            test_env, {"WEBHOOKS_RETRY_SCHEDULE": "3600"}, **shape,
            wrapper=resolver.wrapper()) as worker:
        create_subscription(client, tenant, "http://hangs.example.test/hook",
                            event_types=["invoice.created"], timeout_seconds=5)
        healthy = create_subscription(client, tenant, f"http://ok.example.test:{port}/hook",
                                      event_types=["invoice.paid"], timeout_seconds=10)
        for n in range(12):
            worker.publish(event_type="invoice.created", event_data={"n": n},
                           tenant_id=tenant["id"])
        wait_for(lambda: resolver.unanswered_lookups >= 10, timeout=30,
                 message="the window's 10 lookups of the silent name to be waiting")
        worker.publish(event_type="invoice.paid", event_data={"n": 0}, tenant_id=tenant["id"])

        delivery = wait_for_delivery(
            session, lambda d: str(d.subscription_id) == healthy["id"] and d.attempt_count >= 1,
            timeout=30, message="the named receiver's attempt to be recorded")
    attempt = attempts_of(session, delivery.id)[0]
    assert (attempt.response_status, attempt.error_class) == (200, None)
    assert attempt.duration_ms < 2000
    assert "ok.example.test" in resolver.names
