"""SSRF: targets on loopback, private, link-local, reserved... addresses, in every spelling,
are refused when a subscription is created and again when a delivery is sent; the
connection goes to the address that was checked (DNS rebinding); redirects are not
followed. One rule (webhooks_api.domain.ssrf) decides in both places."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests_hardened.ip_filter import _is_ip_in_extra_blocked_ranges
from sqlalchemy import select

from tests.support.engine_support import isolated_worker
from tests.support.helpers import wait_for
from tests.support.receiver import Receiver, Reply
from tests.support.security_support import (
    PUBLIC_ADDRESS,
    ConnectionGuard,
    ControlledResolver,
    attempts_of,
    override_settings,
    stored_delivery_ids,
)
from webhooks_api.domain.models import Delivery, DeliveryAttempt
from webhooks_api.domain.ssrf import is_forbidden_address, resolve
from webhooks_worker.delivery import http_client
from webhooks_worker.delivery.attempt import attempt_delivery

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"

# Hosts that are, or resolve to, a forbidden address: every range of the issue, each in the
# spellings an attacker tries (decimal, octal, hex, short forms, IPv4-mapped IPv6).
FORBIDDEN_HOSTS = [
    # loopback 127.0.0.0/8, ::1
    "127.0.0.1", "127.1.2.3", "localhost", "[::1]", "127.1",
    "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "017700000001",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[::ffff:0:7f00:1]",
    "[64:ff9b::7f00:1]",
    # unspecified
    "0.0.0.0", "0", "[::]",
    # private 10/8, 172.16/12, 192.168/16
    "10.0.0.1", "167772161", "012.0.0.1", "0xa.0.0.1", "172.16.0.1", "172.31.255.254",
    "192.168.0.1", "0xc0.0xa8.0.1", "[::ffff:10.0.0.1]",
    # link-local 169.254/16 (cloud metadata), fe80::/10
    "169.254.169.254", "0xa9fea9fe", "0251.0376.0251.0376", "2852039166",
    "[::ffff:169.254.169.254]", "[fe80::1]",
    # CGNAT 100.64/10
    "100.64.0.1", "100.127.255.254",
    # unique local fc00::/7, site-local fec0::/10
    "[fc00::1]", "[fd12:3456::1]", "[fec0::1]",
    # multicast, broadcast, reserved, documentation
    "224.0.0.1", "[ff02::1]", "255.255.255.255", "240.0.0.1", "192.0.2.1", "[2001:db8::1]",
]

# Names resolved by the test's resolver at create time.
RESOLVED_NAMES = {
    "internal.example.test": [["10.1.2.3"]],
    "metadata.example.test": [["169.254.169.254"]],
    "v6-internal.example.test": [["fd00::5"]],
    # One private record among public ones is enough to refuse the name.
    "mixed.example.test": [[PUBLIC_ADDRESS, "10.0.0.1"]],
    "public.example.test": [[PUBLIC_ADDRESS]],
    "nowhere.example.test": [[]],
}

# Forbidden hosts that land on this machine's 127.0.0.1: if the send-time check failed,
# the worker's POST would reach the receiver, so "the receiver got nothing" means something.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "0.0.0.0", "2130706433", "0177.0.0.1",
                  "0x7f.0.0.1", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "[::1]"]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host.strip("[]"))


@pytest.fixture
def refuse_private(app):
    with override_settings(app, allow_private_targets=False) as settings:
        yield settings


# --- the predicate -----------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "0.0.0.0", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fc00::1",
    "fe80::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::127.0.0.1", "::ffff:0:7f00:1",
    "64:ff9b::a00:1", "2002:a00:1::",
])
def test_forbidden_addresses(address):
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC_ADDRESS, "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_allowed(address):
    assert not is_forbidden_address(ipaddress.ip_address(address))


_any_address = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
)


@given(_any_address)
def test_every_non_global_address_is_forbidden(address):
    if not address.is_global or address.is_multicast:
        assert is_forbidden_address(address)


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_ipv4_mapped_ipv6_is_judged_as_its_ipv4(address):
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert is_forbidden_address(mapped) == is_forbidden_address(address)


@given(_any_address)
def test_our_rule_refuses_everything_requests_hardened_refuses(address):
    judged = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        judged = address.ipv4_mapped
    if judged.is_private or judged.is_multicast or _is_ip_in_extra_blocked_ranges(judged):
        assert is_forbidden_address(address)


# --- create time -------------------------------------------------------------------------

@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_create_refuses_forbidden_host(client, tenant, refuse_private, host):
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": f"https://{host}/hook", "event_types": ["invoice.created"]})
    assert response.status_code == 422, response.json
    assert response.json["errors"]["url"] == [
        f"host {host.strip('[]').lower()!r} is or resolves to a private or reserved address"
    ]


@pytest.mark.parametrize("name, expected", [
    ("internal.example.test", 422), ("metadata.example.test", 422),
    ("v6-internal.example.test", 422), ("mixed.example.test", 422),
    ("nowhere.example.test", 422), ("public.example.test", 201),
])
def test_create_judges_what_a_name_resolves_to(client, tenant, refuse_private, monkeypatch,
                                               name, expected):
    resolver = ControlledResolver(RESOLVED_NAMES).install(monkeypatch)
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": f"https://{name}/hook", "event_types": ["invoice.created"]})
    assert response.status_code == expected, response.json
    assert resolver.lookups == [name]
    if name == "nowhere.example.test":
        assert response.json["errors"]["url"] == [f"host {name!r} does not resolve"]


@pytest.mark.parametrize("url", [f"https://{PUBLIC_ADDRESS}/hook", "https://[2606:4700::1111]/h"])
def test_create_accepts_public_address(client, tenant, refuse_private, url):
    response = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": url, "event_types": ["invoice.created"]})
    assert response.status_code == 201, response.json


# --- send time ---------------------------------------------------------------------------

def test_worker_refuses_loopback_spellings_at_send_time(app, client, tenant, receiver,
                                                        session, test_env):
    """Subscriptions made while private targets were allowed; the worker that sends
    refuses them: every attempt is `forbidden_address` and nothing reaches the receiver."""
    port = receiver.server.server_address[1]
    for host in LOOPBACK_HOSTS:
        created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
            "url": f"http://{host}:{port}/hook", "event_types": ["invoice.created"]})
        assert created.status_code == 201, created.json

    with isolated_worker(test_env, {"WEBHOOKS_ALLOW_PRIVATE_TARGETS": "false"}) as worker:
        worker.publish("invoice.created", {"invoice_id": "inv_1"}, tenant["id"])

        def all_failed():
            session.expire_all()
            deliveries = session.scalars(select(Delivery)).all()
            return (len(deliveries) == len(LOOPBACK_HOSTS)
                    and all(d.status == "failed" for d in deliveries))

        wait_for(all_failed, timeout=60, message="every delivery to fail")
    attempts = session.scalars(select(DeliveryAttempt)).all()
    assert len(attempts) == 4 * len(LOOPBACK_HOSTS)  # refused again on every retry
    assert {a.error_class for a in attempts} == {"forbidden_address"}
    assert all(a.response_status is None for a in attempts)
    assert receiver.requests == []


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_client_refuses_forbidden_host_before_connecting(monkeypatch, host):
    guard = ConnectionGuard().install(monkeypatch)
    result = http_client.post(http_client.delivery_session(allow_private_targets=False),
                       f"http://{host}:9/hook", b"{}", {}, timeout_seconds=5)
    assert (result.error_class, result.status_code) == ("forbidden_address", None)
    assert guard.refused == []


@given(_any_address)
def test_an_address_resolves_to_what_the_c_library_reads(address):
    host = str(address)
    answer = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    assert resolve(host, 443) == [ipaddress.ip_address(info[4][0]) for info in answer]


@pytest.mark.parametrize(("host", "address"), [
    ("203.0.113.7", "203.0.113.7"), ("2001:db8::7", "2001:db8::7"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"),
])
def test_only_a_host_that_is_not_an_address_in_its_standard_form_is_looked_up(
        monkeypatch, host, address):
    """Under the worker's gevent pool each lookup is a round trip through the hub's thread
    pool, for an answer an address already is; other spellings are the C library's to
    read, as the connection would read them."""
    looked_up = []
    system = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda name, *args, **kwargs: looked_up.append(name)
                        or system(name, *args, **kwargs))
    assert resolve(host, 443) == [ipaddress.ip_address(address)]
    assert looked_up == ([] if host == address else [host])


@pytest.mark.parametrize("name", ["internal.example.test", "metadata.example.test",
                                  "v6-internal.example.test", "mixed.example.test"])
def test_client_refuses_a_name_with_any_forbidden_address(monkeypatch, name):
    """requests-hardened alone judges only the first address; `mixed` lists a public one
    first and would pass there."""
    resolver = ControlledResolver(RESOLVED_NAMES).install(monkeypatch)
    guard = ConnectionGuard().install(monkeypatch)
    result = http_client.post(http_client.delivery_session(allow_private_targets=False),
                       f"https://{name}/hook", b"{}", {}, timeout_seconds=5)
    assert (result.error_class, result.status_code) == ("forbidden_address", None)
    assert resolver.lookups == [name] and guard.refused == []


def test_dns_rebinding_is_refused(app, client, tenant, receiver, session, refuse_private,
                                  monkeypatch):
    """Public when the subscription is created, 127.0.0.1 when the delivery is sent: the
    send-time check sees 127.0.0.1 and refuses; nothing connects anywhere."""
    port = receiver.server.server_address[1]
    resolver = ControlledResolver(
        {"rebind.example.test": [[PUBLIC_ADDRESS], ["127.0.0.1"]]}).install(monkeypatch)
    guard = ConnectionGuard().install(monkeypatch)
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": f"http://rebind.example.test:{port}/hook", "event_types": ["invoice.created"]})
    assert created.status_code == 201, created.json

    [delivery_id] = stored_delivery_ids(session, refuse_private, tenant["id"])
    outcome = attempt_delivery(session, refuse_private, delivery_id, 1, "automatic")

    assert outcome.status == "retrying"
    [attempt] = attempts_of(session, delivery_id)
    assert attempt.error_class == "forbidden_address"
    assert resolver.lookups == ["rebind.example.test", "rebind.example.test"]
    assert guard.refused == [] and receiver.requests == []


def test_connection_goes_to_the_checked_address(app, client, tenant, receiver, session,
                                                monkeypatch):
    """The name resolves to 127.0.0.1 when checked and elsewhere afterwards: the request
    still reaches 127.0.0.1, because the client connects to the address it checked and
    never asks the resolver again (private targets allowed here, so the check passes)."""
    port = receiver.server.server_address[1]
    resolver = ControlledResolver(
        {"pinned.example.test": [["127.0.0.1"], ["10.255.255.1"]]}).install(monkeypatch)
    guard = ConnectionGuard().install(monkeypatch)
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": f"http://pinned.example.test:{port}/hook", "event_types": ["invoice.created"]})
    assert created.status_code == 201, created.json
    settings = app.config["WEBHOOKS_SETTINGS"]

    [delivery_id] = stored_delivery_ids(session, settings, tenant["id"])
    outcome = attempt_delivery(session, settings, delivery_id, 1, "automatic")

    assert outcome.status == "success"
    assert resolver.lookups == ["pinned.example.test"]
    assert guard.refused == []
    [request] = receiver.requests
    assert request.headers["Host"] == f"pinned.example.test:{port}"


# --- redirects ---------------------------------------------------------------------------

def test_redirect_to_an_internal_service_is_not_followed(client, tenant, receiver, worker,
                                                         session):
    """A receiver answering 302 to an internal URL (another local server standing in for
    a metadata or admin endpoint) gets a failed attempt; the internal server gets nothing."""
    internal = Receiver().start()
    try:
        receiver.respond = lambda request: Reply(302, b"", {"Location": internal.url})
        created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
            "url": receiver.url, "event_types": ["invoice.created"]})
        assert created.status_code == 201, created.json
        published = client.post("/api/v1/webhooks/publish", headers=tenant["headers"],
                                json={"event_type": "invoice.created", "data": {}})
        assert published.status_code == 202

        def first_attempt():
            session.expire_all()
            return session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.attempt_number == 1)).first()

        attempt = wait_for(first_attempt, timeout=30, message="the first attempt")
        assert attempt.response_status == 302 and attempt.error_class is None
        delivery = session.get(Delivery, attempt.delivery_id)
        assert delivery.status in ("retrying", "failed")
        assert len(receiver.requests) >= 1
        assert internal.requests == []
    finally:
        internal.stop()
