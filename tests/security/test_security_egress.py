"""The egress proxy (WEBHOOKS_EGRESS_PROXY): every delivery leaves by HTTP CONNECT to the
address that was resolved and checked, for http:// targets too (never a request the proxy
would resolve itself); Host, SNI and the certificate check keep the URL's name; a target
the SSRF rule refuses never reaches the proxy, whose own (private) address is not judged;
a proxy that is down, refuses or hangs is a retried `connection_error` or a `timeout`
within the attempt's deadline. A real CONNECT proxy on 127.0.0.1 logs what it was asked."""

from __future__ import annotations

import base64
import dataclasses
import ssl
import time

import pytest
from urllib3.exceptions import ProtocolError

from tests.support.connect_proxy import ConnectProxy
from tests.support.engine_support import (
    attempts_of,
    create_subscription,
    deliveries_of,
    isolated_worker,
    log_offset,
    log_since,
    wait_for_delivery,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Receiver, Reply
from tests.support.security_support import (
    PUBLIC_ADDRESS,
    ControlledResolver,
    stored_delivery_ids,
)
from tests.support.tls_support import self_signed_certificate
from webhooks_api.config import ConfigError, EgressProxy, load_settings
from webhooks_dev.embedded import free_port
from webhooks_worker.delivery import http_client
from webhooks_worker.delivery.attempt import attempt_delivery

# Credentials with a character that must be percent-encoded in the URL.
USER, PASSWORD = "egress-user", "s3cr@t:pw"
PROXY_AUTHORIZATION = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _egress(url: str) -> EgressProxy:
    return load_settings({"WEBHOOKS_EGRESS_PROXY": url}).egress_proxy


def _with_credentials(proxy: ConnectProxy) -> str:
    return f"http://{USER}:s3cr%40t%3Apw@127.0.0.1:{proxy.port}"


@pytest.fixture
def proxy():
    with ConnectProxy() as proxy:
        yield proxy


# --- the setting ---------------------------------------------------------------------------

def test_the_setting_names_the_proxy_and_its_credentials():
    assert _egress("http://10.0.0.5:3128") == EgressProxy("10.0.0.5", 3128, None)
    assert _egress("http://[fd00::5]:3128").shown == "[fd00::5]:3128"
    egress = _egress(f"http://{USER}:s3cr%40t%3Apw@proxy.internal:8080")
    assert (egress.host, egress.port) == ("proxy.internal", 8080)
    assert egress.authorization == PROXY_AUTHORIZATION
    assert "s3cr" not in repr(load_settings({"WEBHOOKS_EGRESS_PROXY": "http://u:s3cr@p:1"}))
    assert load_settings({}).egress_proxy is None


@pytest.mark.parametrize("url, refusal", [
    ("https://u:s3cr@proxy:3128", "must be an http:// URL (a proxy that accepts HTTP CONNECT), "
                                  "got a https:// URL"),
    ("socks5://proxy:1080", "must be an http:// URL"),
    ("//proxy:3128", "got no scheme"),
    ("http://u:s3cr@proxy", "must name the proxy's host and port"),
    ("http://:3128", "must name the proxy's host and port"),
    ("http://proxy:3128/path", "must have no path, query or fragment"),
    ("http://proxy:3128/?a=b", "must have no path, query or fragment"),
    ("http://u:s3cr@proxy:99999", "is not a valid URL"),
])
def test_a_bad_setting_stops_the_start_up_without_repeating_it(url, refusal):
    with pytest.raises(ConfigError) as refused:
        load_settings({"WEBHOOKS_EGRESS_PROXY": url})
    message = str(refused.value)
    assert message.startswith("WEBHOOKS_EGRESS_PROXY ") and refusal in message
    assert "http://[user:password@]host:port" in message and "s3cr" not in message


# --- through a worker ----------------------------------------------------------------------

def test_deliveries_leave_through_the_proxy_by_connect_to_the_checked_address(
        client, tenant, receiver, tls_receiver, session, test_env):
    """http:// and https:// targets named `localhost`: the proxy is asked for the address
    the worker resolved and checked, never given the name; the receivers still see it in
    Host, and the certificate is checked (through WEBHOOKS_CA_BUNDLE). The credentials go
    in Proxy-Authorization and nowhere in the worker's log."""
    port, tls_port = receiver.server.server_address[1], tls_receiver.server.server_address[1]
    create_subscription(client, tenant, f"http://localhost:{port}/hook")
    create_subscription(client, tenant, f"https://localhost:{tls_port}/hook")
    offset = log_offset()
    with ConnectProxy(authorization=PROXY_AUTHORIZATION) as proxy, isolated_worker(
            test_env, {"WEBHOOKS_EGRESS_PROXY": _with_credentials(proxy),
                       "WEBHOOKS_CA_BUNDLE": tls_receiver.cert_path}) as worker:
        worker.publish("invoice.created", {"n": 1}, tenant["id"])
        wait_for(lambda: [d.status for d in deliveries_of(session)] == ["success"] * 2,
                 message="both deliveries to succeed")
        asked = list(proxy.asked)

    assert sorted((a.method, a.target) for a in asked) == sorted(
        [("CONNECT", f"127.0.0.1:{port}"), ("CONNECT", f"127.0.0.1:{tls_port}")])
    assert all(a.headers["Proxy-Authorization"] == PROXY_AUTHORIZATION for a in asked)
    [plain], [tls] = receiver.posts(), tls_receiver.posts()
    assert plain.headers["Host"] == f"localhost:{port}"
    assert tls.headers["Host"] == f"localhost:{tls_port}"
    assert "Proxy-Authorization" not in plain.headers | tls.headers
    log = log_since(offset)
    assert f"deliveries leave through the egress proxy 127.0.0.1:{proxy.port}" in log
    assert "s3cr" not in log and PROXY_AUTHORIZATION.split()[1] not in log


def test_a_refused_target_never_reaches_the_proxy(client, tenant, receiver, session, test_env,
                                                  proxy):
    """Production's rule (private targets refused): the loopback receiver is refused
    before the proxy is asked anything; a public target is checked, then asked of the proxy
    (its own address, 127.0.0.1, is not judged), which refuses to open that tunnel (this
    test's proxy reaches 127.0.0.0/8 only): a retried `connection_error`."""
    port = receiver.server.server_address[1]
    private = create_subscription(client, tenant, f"http://localhost:{port}/hook")
    public = create_subscription(client, tenant, f"http://{PUBLIC_ADDRESS}/hook")
    with isolated_worker(test_env, {"WEBHOOKS_ALLOW_PRIVATE_TARGETS": "false",
                                    "WEBHOOKS_EGRESS_PROXY": proxy.url}) as worker:
        worker.publish("invoice.created", {"n": 1}, tenant["id"])
        wait_for(lambda: [d.status for d in deliveries_of(session)] == ["failed"] * 2,
                 timeout=60, message="both deliveries to fail")

    [refused] = deliveries_of(session, private["id"])
    assert [a.error_class for a in attempts_of(session, refused.id)] == ["forbidden_address"] * 4
    assert refused.last_error.startswith("forbidden_address: ")
    assert receiver.requests == []
    [tunnelled] = deliveries_of(session, public["id"])
    attempts = attempts_of(session, tunnelled.id)
    assert [a.error_class for a in attempts] == ["connection_error"] * 4
    assert f"opened no tunnel to {PUBLIC_ADDRESS}:80: Tunnel connection failed: 403 Forbidden" \
        in attempts[0].error_message
    assert str(proxy.port) not in attempts[0].error_message
    assert proxy.targets() == [f"{PUBLIC_ADDRESS}:80"] * 4  # one CONNECT per attempt


# --- the client ------------------------------------------------------------------------------

def test_https_through_the_proxy_is_verified_by_the_receivers_name(tmp_path, monkeypatch,
                                                                   proxy):
    """The certificate names `receiver.test` only (no address): it passes for that name
    and fails for another name that resolves to the same address, though the proxy is
    asked for the same IP:port both times. SNI carries the URL's name."""
    cert, key = self_signed_certificate(tmp_path, dns_names=("receiver.test",), addresses=())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    tls = Receiver(ssl_context=context).start()
    port = tls.server.server_address[1]
    ControlledResolver({"receiver.test": [["127.0.0.1"]],
                        "impostor.test": [["127.0.0.1"]]}).install(monkeypatch)
    try:
        session = http_client.delivery_session(True, _egress(proxy.url))
        good, bad = (http_client.post(session, f"https://{name}:{port}/hook", b"{}", {}, 5,
                                      ca_bundle=cert)
                     for name in ("receiver.test", "impostor.test"))
        assert good.succeeded, good
        assert bad.error_class == "tls_error"
        assert "'impostor.test' doesn't match 'receiver.test'" in bad.error_message
        assert proxy.targets() == [f"127.0.0.1:{port}"] * 2
        assert server_names == ["receiver.test", "impostor.test"]
        [request] = tls.posts()
        assert request.headers["Host"] == f"receiver.test:{port}"
    finally:
        tls.stop()


def test_every_new_connection_is_a_tunnel_and_kept_ones_are_reused(receiver, proxy):
    """Posts share a kept-alive tunnel; once the receiver has closed it, the next
    connection asks the proxy again (urllib3 forgets a tunnel on close): no request goes
    around the proxy."""
    session = http_client.delivery_session(True, _egress(proxy.url))
    port = receiver.server.server_address[1]
    for _ in range(2):
        assert http_client.post(session, receiver.url, b"{}", {}, 5).succeeded
    assert proxy.targets() == [f"127.0.0.1:{port}"]
    receiver.respond = lambda request: Reply(headers={"Connection": "close"})
    for _ in range(2):  # the first on the kept tunnel, which it closes; the second anew
        assert http_client.post(session, receiver.url, b"{}", {}, 5).succeeded
    assert proxy.targets() == [f"127.0.0.1:{port}"] * 2
    assert len(receiver.posts()) == 4 and receiver.connections == 2


def test_a_proxy_named_by_a_host_name_is_resolved_for_each_connection(receiver, proxy,
                                                                       monkeypatch):
    resolver = ControlledResolver({"proxy.test": [["127.0.0.1"]],
                                   "gone-proxy.test": [[]]}).install(monkeypatch)
    named = http_client.delivery_session(True, _egress(f"http://proxy.test:{proxy.port}"))
    assert http_client.post(named, receiver.url, b"{}", {}, 5).succeeded
    assert proxy.targets() == [f"127.0.0.1:{receiver.server.server_address[1]}"]

    gone = http_client.delivery_session(True, _egress(f"http://gone-proxy.test:{proxy.port}"))
    result = http_client.post(gone, receiver.url, b"{}", {}, 5)
    assert result.error_class == "connection_error"
    assert "the egress proxy's host name does not resolve" in result.error_message
    assert resolver.lookups == ["proxy.test", "gone-proxy.test"]
    assert len(receiver.posts()) == 1


def test_a_proxy_that_is_down_is_a_retried_connection_error(app, client, tenant, receiver,
                                                            session):
    create_subscription(client, tenant, receiver.url)
    settings = dataclasses.replace(app.config["WEBHOOKS_SETTINGS"],
                                   egress_proxy=_egress(f"http://127.0.0.1:{free_port()}"))
    [delivery_id] = stored_delivery_ids(session, settings, tenant["id"])

    outcome = attempt_delivery(session, settings, delivery_id, 1, "automatic")

    assert (outcome.status, outcome.retry_in) == ("retrying", 1)
    [attempt] = attempts_of(session, delivery_id)
    assert (attempt.error_class, attempt.response_status) == ("connection_error", None)
    assert "could not connect to the egress proxy: Connection refused" in attempt.error_message
    assert str(settings.egress_proxy.port) not in attempt.error_message
    delivery = wait_for_delivery(session, lambda d: d.id == delivery_id)
    assert delivery.status == "retrying" and delivery.next_retry_at is not None
    assert receiver.requests == []


def test_a_proxy_that_never_answers_the_connect_ends_at_the_deadline(receiver):
    with ConnectProxy(answers=False) as silent:
        session = http_client.delivery_session(True, _egress(silent.url))
        start = time.monotonic()
        result = http_client.post(session, receiver.url, b"{}", {}, timeout_seconds=1)
        elapsed = time.monotonic() - start
        assert silent.targets() == [f"127.0.0.1:{receiver.server.server_address[1]}"]
    assert result.error_class == "timeout" and result.status_code is None
    assert 1 <= elapsed < 2.5
    assert receiver.requests == []


def test_a_failure_once_the_deadline_has_passed_is_a_timeout_before_the_watchdog_runs():
    """The socket's own timeout and the watchdog's expiry come at the same moment. Inside a
    tunnel urllib3 reports the first as a dropped connection; on a loaded machine it was
    classified before the watchdog's thread ran, and the silent proxy above was once
    recorded as a `connection_error`. Once the time is up, the attempt is a timeout."""
    dropped = ProtocolError("Connection aborted.", TimeoutError("timed out"))
    passed = http_client._Deadline(0.01)  # never given to the watchdog: it stays unexpired
    time.sleep(0.02)
    assert not passed.expired
    assert http_client._classify(dropped, passed, 1) == (
        "timeout", "no complete response within 1 s")
    # Before its time the same failure is the connection's.
    assert http_client._classify(dropped, http_client._Deadline(60), 1)[0] == "connection_error"
