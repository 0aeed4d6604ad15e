"""What the security tests control: settings of the running app, name resolution (the
machine has no DNS) and where in-process sockets may connect (127.0.0.1 only)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from webhooks_api.config import Settings
from webhooks_api.domain.models import DeliveryAttempt
from webhooks_api.services.events import store_event
from webhooks_worker.publishing.fanout import fan_out

PUBLIC_ADDRESS = "93.184.216.34"  # never connected to: the guard below refuses it


@contextmanager
def override_settings(app, **changes) -> Iterator[Settings]:
    """The API reads its settings per request: swap them for the block."""
    original = app.config["WEBHOOKS_SETTINGS"]
    app.config["WEBHOOKS_SETTINGS"] = dataclasses.replace(original, **changes)
    try:
        yield app.config["WEBHOOKS_SETTINGS"]
    finally:
        app.config["WEBHOOKS_SETTINGS"] = original


class ControlledResolver:
    """`socket.getaddrinfo` for the names it knows: the n-th lookup of a name gets the n-th
    list of addresses (the last list repeats; an empty list does not resolve). IP literals
    and other names go to the system resolver, which needs no DNS for them."""

    def __init__(self, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.lookups: list[str] = []
        self._system = socket.getaddrinfo

    def install(self, monkeypatch) -> ControlledResolver:
        monkeypatch.setattr(socket, "getaddrinfo", self)
        return self

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._system(host, port, family, type, proto, flags)
        self.lookups.append(name)
        answers = self.answers[name]
        addresses = answers[min(self.lookups.count(name), len(answers)) - 1]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))
            if ":" in address else
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))
            for address in addresses
        ]


class ConnectionGuard:
    """Lets in-process sockets connect to 127.0.0.1 only; records every other attempt."""

    def __init__(self):
        self.refused: list[tuple] = []

    def install(self, monkeypatch) -> ConnectionGuard:
        connect = socket.socket.connect

        def guarded_connect(sock, address):
            if isinstance(address, tuple) and address[0] != "127.0.0.1":
                self.refused.append(address)
                raise ConnectionRefusedError(f"test guard: no traffic to {address[0]}")
            return connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", guarded_connect)
        return self


def stored_delivery_ids(session, settings: Settings, tenant_id: str,
                        event_type: str = "invoice.created") -> list[str]:
    """Store and fan out one event without enqueueing anything, so that no worker
    process touches its deliveries: the test makes the attempt itself."""
    stored = store_event(session, settings, tenant_id, event_type, {"invoice_id": "inv_1"})
    delivery_ids = [message.kwargs["delivery_id"] for message in fan_out(session, stored.event)]
    session.commit()
    return delivery_ids


def attempts_of(session, delivery_id: str) -> list[DeliveryAttempt]:
    session.expire_all()
    return list(session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.attempt_number)
    ))
