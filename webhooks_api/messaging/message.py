"""A task message as the API and the worker send it: a leaf, so that what builds messages
and what labels them need not import each other."""

from __future__ import annotations

from typing import NamedTuple


class Message(NamedTuple):
    """A task message to send; `reprs` are Flower's (argsrepr, kwargsrepr), from what the
    sender knows (webhooks_api.messaging.labels)."""

    name: str
    kwargs: dict
    queue: str
    reprs: tuple[str, str] | None = None
