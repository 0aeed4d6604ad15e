"""Log format for every process: plain text or one JSON object per line."""

from __future__ import annotations

import logging

from .config import Settings

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(settings: Settings) -> None:
    """Install one root handler once; JSON lines when WEBHOOKS_LOG_FORMAT=json."""
    root = logging.getLogger()
    if any(getattr(h, "_webhooks", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._webhooks = True  # type: ignore[attr-defined]
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)
