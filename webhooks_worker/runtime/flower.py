"""Flower on our Celery app, never open in production: it shows every task of every tenant.

`python -m webhooks_worker.runtime.flower [flower options]` (the Procfile's line) is
`celery -A webhooks_worker.celery_app flower [flower options]`; both load our app, whose
`refuse_open_flower` runs as Flower starts. Flower reads its options first (its own
`FLOWER_*` environment, the command line, `flowerconfig.py`), then builds its web
application, whose constructor imports the app's default modules: Celery's `import_modules`
signal. There, inside the `flower` command, Flower's final options say whether anything
authenticates its users (`basic_auth`, from `FLOWER_BASIC_AUTH` or `--basic-auth`, or an
OAuth `auth`); in production without either it exits before binding its port. A worker
or beat sends the same signal from another command and is not concerned.

A Flower that does not load our app (`celery --broker=… flower`) is not checked.
"""

from __future__ import annotations

import os
import sys

import click
from celery.signals import import_modules


@import_modules.connect
def refuse_open_flower(sender=None, **_) -> None:
    context = click.get_current_context(silent=True)
    if context is None or context.command.name != "flower":
        return
    from tornado.options import options  # Flower's options, parsed by now

    if sender.flask_app.config["WEBHOOKS_SETTINGS"].env == "production" and not (
            options.basic_auth or options.auth):
        raise SystemExit("flower: refusing to start: FLOWER_BASIC_AUTH must be set "
                         "(user:password) in production; without it Flower shows every "
                         "tenant's tasks to anyone who reaches its port")


def main(argv: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "webhooks_worker.celery_app",
                              "flower", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
