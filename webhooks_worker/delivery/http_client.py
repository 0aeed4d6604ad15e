"""The hardened HTTP client of the delivery engine.

Exceptions are turned into one `HttpResult` here, in one place (httpx's split):

    no response ── timeout            (connect, read, or the wall-clock deadline)
                ├─ dns_error          (the host does not resolve)
                ├─ forbidden_address  (resolves to a private/reserved address)
                ├─ tls_error
                ├─ connection_error   (refused, reset, closed early; the egress proxy
                │                      unreachable or opening no tunnel)
                └─ request_error      (anything else)
    a response ── status_code set     (2xx success, anything else is a failure)

A per-read timeout does not bound a receiver that drips a byte a second, so every attempt
runs under a `_Deadline`: a timer that shuts the connection's socket down when the
subscription's `timeout_seconds` have passed, wherever the request is (headers or body),
and that stops waiting for a resolver that has not answered by then. Redirects are never
followed, proxies from the environment are ignored, TLS is verified (against
WEBHOOKS_CA_BUNDLE when set, else certifi's bundle), and the host is resolved once per
request by `DeliverySession.pool`: with private targets refused every address is judged by
the same rule as at create time (webhooks_api.domain.ssrf), and the connection goes to the
address that was checked, so DNS rebinding cannot swap it.

With WEBHOOKS_EGRESS_PROXY set, every connection is a CONNECT tunnel through that proxy to
the checked address, for http:// targets too (webhooks_worker.delivery.egress): the proxy
is never given the host name to resolve again. A proxy that cannot be reached or opens no
tunnel is a `connection_error`, and the CONNECT runs under the attempt's deadline.

The POST goes straight to a urllib3 connection pool. requests (with requests-hardened) cost
~4 ms of CPU per POST under a profiler, in work a delivery does not need: preparing the
request, merging environment settings, cookies, hooks, the adapter.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache, partial
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

import certifi
from urllib3 import PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as HTTPTimeoutError

from webhooks_api.config import EgressProxy
from webhooks_api.domain.ssrf import Address, ForbiddenAddressError, checked_addresses, resolve
from webhooks_api.domain.urls import parse_target
from webhooks_worker.delivery.egress import EgressProxyError, TunnelledConnection, usable
from webhooks_worker.runtime.watchdog import watchdog

logger = logging.getLogger(__name__)

# Receivers (pinned address, port and TLS name) whose kept-alive connections a process
# keeps, least recently used first out. Fewer pools than the receivers a process serves
# means a new connection (and TLS handshake) for nearly every delivery: urllib3's default
# of 10, and 200 with the benchmark's 1,000 receivers (docs/decisions/0010). Each idle
# connection is an open file (docs/operations.md, "Receiver connections").
KEPT_RECEIVERS = 2000
# Idle connections kept per receiver. A busy receiver has dozens of a process's deliveries
# in flight at once (its in-flight window); with urllib3's default of 10 every connection
# past the tenth was closed on return, and a receiver answering in 200 ms got a new
# connection for 31 % of its deliveries (bench busy_slow).
KEPT_CONNECTIONS_PER_RECEIVER = 50
MAX_RESPONSE_BYTES = 64 * 1024
STORED_RESPONSE_BYTES = 4 * 1024

_local = threading.local()
T = TypeVar("T")


@cache
def user_agent() -> str:
    try:
        return f"webhooks-service/{version('webhooks-service')}"
    except PackageNotFoundError:
        return "webhooks-service/dev"


class _Deadline:
    """Shuts down the sockets of the current attempt once its time is up.

    It holds a duplicate of each socket's descriptor, taken when the connection is made
    (or reused): the duplicate stays valid while TLS wraps the socket, so a receiver that
    drips its handshake, its headers or its body is cut all the same (shutdown acts on the
    connection, not on one descriptor). Name resolution happens before any socket exists,
    so `wait_for` runs it in a thread of its own, waited for until the deadline. The process's
    `watchdog` calls `expire` when the time has passed.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self.finished = False
        self._seconds = seconds
        self._sockets: list[socket.socket] = []
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()

    def __enter__(self) -> _Deadline:
        _local.deadline = self
        watchdog.add(self, self._seconds)
        return self

    def __exit__(self, *exc_info) -> None:
        _local.deadline = None
        with self._lock:
            self.finished = True
            for duplicate in self._sockets:
                duplicate.close()  # closes our descriptor only; the connection stays pooled
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.finished:
                return
            try:
                duplicate = socket.socket(fileno=os.dup(sock.fileno()))
            except OSError:  # already closed: nothing left to cut
                return
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)

    def wait_for(self, function: Callable[..., T], *args) -> T:
        """`function(*args)` (name resolution) in a thread of its own, waited for until the
        deadline: a blocking call that holds no socket of ours cannot be cut, only left.
        When time runs out it raises `_DeadlineExpired` and the thread is abandoned; it ends
        when the system resolver gives up. Under the gevent pool the thread is a greenlet
        and the resolver runs in gevent's thread pool."""
        outcome: list = []
        answered = threading.Event()

        def call() -> None:
            try:
                outcome.append((function(*args), None))
            except Exception as error:  # re-raised in the attempt's own thread
                outcome.append((None, error))
            answered.set()

        threading.Thread(target=call, name="resolve", daemon=True).start()
        if not answered.wait(max(0.0, self._ends - time.monotonic())):
            self.expire()  # the watchdog's own call may come a moment later
            raise _DeadlineExpired()
        result, error = outcome[0]
        if error is not None:
            raise error
        return result

    @property
    def passed(self) -> bool:
        """The time is up, whether or not the watchdog has run yet. A socket's own timeout
        fires at the same moment, and inside a proxy's tunnel urllib3 reports it as a
        dropped connection; an attempt that fails then failed by running out of time."""
        return self.expired or time.monotonic() >= self._ends

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for duplicate in self._sockets:
                _shutdown(duplicate)


def _shutdown(sock: socket.socket) -> None:
    """Wakes any read or write blocked on the connection, under TLS too."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedConnection(TunnelledConnection):
    """Mixin: puts every socket the attempt uses under the attempt's deadline (with an
    egress proxy, the tunnel's too: the CONNECT is part of the attempt)."""

    def resolve_proxy(self, host: str, port: int) -> list[Address]:
        deadline = getattr(_local, "deadline", None)
        return deadline.wait_for(resolve, host, port) if deadline else resolve(host, port)

    def _new_conn(self):
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args, **kwargs):
        _watch(self.sock)  # a kept-alive connection made by an earlier attempt
        return super().request(*args, **kwargs)


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


@dataclass(frozen=True)
class _Target:
    """What a URL says, parsed once per process (`_target` caches it)."""

    scheme: str
    host: str  # lowercase, IDNA-encoded, unbracketed: resolved, the SNI, the cert's name
    port: int
    host_header: str
    request_uri: str  # path?query, what the request line carries
    is_address: bool  # an IP address: the resolver returns it without asking any server


@lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    parts = parse_target(url)
    try:
        is_address = bool(ipaddress.ip_address(parts.host))
    except ValueError:
        is_address = False
    return _Target(parts.scheme, parts.host, parts.effective_port, parts.host_header,
                   parts.request_uri, is_address)


@cache
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """One verifying context per CA bundle, loaded once per process: urllib3 would
    otherwise build a context and parse the bundle for every new connection."""
    # Built from the `ssl` module as it is now: under the gevent pool that is gevent's
    # cooperative SSLContext (patched after urllib3 had imported the original, so urllib3's
    # own `create_urllib3_context` would make sockets that block the whole process).
    context = ssl.create_default_context(cafile=ca_bundle or certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class DeliverySession:
    """The process's kept-alive connections to receivers: urllib3 pools, no requests layer.

    `pool` resolves the host once per request (within the attempt's deadline), judges it,
    and returns the pool of the address that was checked. With private targets refused
    every address is judged by the create-time rule (`checked_addresses`: any forbidden
    address refuses the target). The pool connects to the checked IP while the Host
    header, SNI and the certificate's expected name stay the URL's host. It pins with
    private targets allowed too, so one code path serves every configuration. Pools are
    keyed by the pinned IP (and the CA bundle), so a kept-alive connection is reused only
    for a host that resolved to the same checked address again. urllib3 reads no proxy
    settings from the environment; `egress` (WEBHOOKS_EGRESS_PROXY) is the only proxy, and
    the target is judged before it is asked for anything.
    """

    def __init__(self, refuse_private: bool, egress: EgressProxy | None = None):
        self._refuse_private = refuse_private
        self._pools = PoolManager(num_pools=KEPT_RECEIVERS,
                                  maxsize=KEPT_CONNECTIONS_PER_RECEIVER)
        # Pools whose connections honour the attempt's wall-clock deadline and tunnel
        # through `egress`, which reaches them as a connection argument.
        self._pools.pool_classes_by_scheme = {"http": partial(_HTTPPool, egress=egress),
                                              "https": partial(_HTTPSPool, egress=egress)}
        if egress is not None:
            logger.info("deliveries leave through the egress proxy %s", egress.shown)

    def pool(self, target: _Target, ca_bundle: str | None,
             deadline: _Deadline) -> HTTPConnectionPool:
        check = (target.host, target.port, self._refuse_private)
        # Only a name can keep the resolver waiting; a thread for an address would cost
        # ~50 us of CPU under gevent for nothing.
        addresses = (checked_addresses(*check) if target.is_address
                     else deadline.wait_for(checked_addresses, *check))
        address = usable(addresses)
        pinned = f"[{address}]" if address.version == 6 else str(address)
        tls = None if target.scheme == "http" else {
            "ssl_context": _tls_context(ca_bundle),
            "server_hostname": target.host,
            "assert_hostname": target.host,
        }
        return self._pools.connection_from_host(pinned, target.port, target.scheme, tls)


@cache
def delivery_session(allow_private_targets: bool,
                     egress_proxy: EgressProxy | None = None) -> DeliverySession:
    """One per worker process (keep-alive to each receiver)."""
    return DeliverySession(refuse_private=not allow_private_targets, egress=egress_proxy)


@dataclass(frozen=True)
class HttpResult:
    """What one attempt got: a complete response (`status_code`) or an `error_class`."""

    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    headers: dict[str, str] | None = None
    body_excerpt: str | None = None
    error_class: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_class is None and self.status_code is not None \
            and 200 <= self.status_code < 300


class _DeadlineExpired(Exception):
    """The body ended only because the deadline shut the connection down."""


def _storable(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL; a receiver may send one."""
    return text.replace("\x00", "\ufffd")


def _classify(error: Exception, deadline: _Deadline, timeout_seconds: float) -> tuple[str, str]:
    # NewConnectionError is a ConnectTimeoutError too (urllib3 keeps that for history); a
    # refused connection is not a timeout.
    if deadline.passed or (isinstance(error, HTTPTimeoutError)
                            and not isinstance(error, NewConnectionError)):
        return "timeout", f"no complete response within {timeout_seconds:g} s"
    if isinstance(error, ForbiddenAddressError):
        logger.warning("refused %s: it resolves to %s", error.host, error.address)
        return "forbidden_address", str(error)
    if isinstance(error, socket.gaierror):  # from `checked_addresses`; urllib3 gets an IP
        return "dns_error", "the host name does not resolve"
    if isinstance(error, SSLError):
        return "tls_error", _storable(str(error))[:500]
    # refused, reset, closed early; no tunnel (urllib3 wraps an OSError in ProtocolError)
    if isinstance(error, NewConnectionError | ProtocolError | EgressProxyError):
        return "connection_error", _storable(str(error))[:500]
    return "request_error", _storable(f"{type(error).__name__}: {error}")[:500]


def post(session: DeliverySession, url: str, body: bytes, headers: dict[str, str],
         timeout_seconds: float, ca_bundle: str | None = None) -> HttpResult:
    """POST `body` and read at most 64 KiB of the answer, all within `timeout_seconds`."""
    started_at = datetime.now(UTC)
    start = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - start) * 1000)

    with _Deadline(timeout_seconds) as deadline:
        try:
            target = _target(url)
            response = session.pool(target, ca_bundle, deadline).urlopen(
                "POST", target.request_uri, body=body,
                headers={"User-Agent": user_agent(), **headers, "Host": target.host_header},
                retries=False, redirect=False, assert_same_host=False, preload_content=False,
                timeout=Timeout(connect=timeout_seconds, read=timeout_seconds),
            )
            try:
                content = response.read(MAX_RESPONSE_BYTES)
            finally:
                # A body read to its end has already given the connection back to the pool
                # (kept alive); a capped or failed one is closed here, and its slot returned.
                response.close()
                response.release_conn()
            if deadline.expired:  # a body without a length "ends" when the socket is shut
                raise _DeadlineExpired()
        except Exception as error:  # every failure becomes a recorded attempt
            error_class, message = _classify(error, deadline, timeout_seconds)
            return HttpResult(started_at, elapsed_ms(), error_class=error_class,
                              error_message=message)
    return HttpResult(
        started_at,
        elapsed_ms(),
        status_code=response.status,
        headers={name: _storable(value) for name, value in response.headers.itermerged()},
        body_excerpt=_storable(
            content[:STORED_RESPONSE_BYTES].decode("utf-8", errors="replace")
        ),
    )
