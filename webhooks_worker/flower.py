"""`python -m webhooks_worker.flower [flower options]`: Flower on our Celery app.

Flower reads its own `FLOWER_*` environment (`FLOWER_BASIC_AUTH=user:password`,
`FLOWER_PORT`, ...), so the password never appears on a command line. This launcher only
refuses to start an open Flower in production: it shows every task of every tenant.
"""

from __future__ import annotations

import os
import sys

from webhooks_api.config import ConfigError, load_settings


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
        if settings.env == "production" and not settings.flower_basic_auth:
            raise ConfigError("FLOWER_BASIC_AUTH must be set (user:password) in production")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "webhooks_worker.celery_app",
                              "flower", *argv])
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
