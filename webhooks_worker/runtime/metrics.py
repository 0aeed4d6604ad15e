"""Prometheus metrics of the worker. Names are part of the operations contract: keep them.

Counters live in each worker process; exposing them (multiprocess mode, an HTTP port) is
the operations layer's job.
"""

from __future__ import annotations

from prometheus_client import Counter

PUBLISH_REJECTED = Counter(
    "webhooks_publish_rejected",
    "Publish tasks dropped because their input can never be valid, by reason.",
    ["reason"],
)
