"""`flask --app webhooks_api listen TENANT`: see a tenant's deliveries arrive, in the spirit
of `stripe listen`.

It serves a receiver on 127.0.0.1, subscribes it for TENANT through the service layer (so
it holds the secret of the create response), prints each delivery with its signature
checked by `webhooks_verify`, and deletes the subscription when it stops (Ctrl-C, SIGTERM,
SIGHUP). Development only: production refuses loopback targets, and a throwaway
subscription has no place there.
"""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
from flask.cli import with_appcontext

from webhooks_api.cli.operations import _fail, current_settings
from webhooks_api.domain.models import Tenant
from webhooks_api.errors import DomainError
from webhooks_api.extensions import db
from webhooks_api.services.subscriptions import create_subscription, delete_subscription
from webhooks_verify import WebhookVerificationError, verify

PATH = "/webhooks"
_print_lock = threading.Lock()


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    secret = ""


class _DeliveryHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        try:
            event = verify(self.server.secret, headers, body)
        except WebhookVerificationError as error:
            self._answer(400)
            _show(f"<-- rejected a request: signature not verified ({error})")
            return
        self._answer(200)
        _show(f"<-- {event.get('type')} {event.get('id')} "
              f"(delivery {headers.get('X-Webhook-Delivery-Id')}, "
              f"attempt {headers.get('X-Webhook-Attempt')}): signature verified",
              "    " + json.dumps(event.get("data"), sort_keys=True))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        """Each delivery is shown by do_POST; no access log."""


def _show(*lines: str) -> None:
    with _print_lock:
        for line in lines:
            click.echo(line)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


@click.command("listen")
@click.argument("tenant_id")
@click.option("--event-types", default="*", show_default=True,
              help="Comma-separated event types or patterns, e.g. invoice.*")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port of the receiver on 127.0.0.1 (default: a free one).")
@with_appcontext
def listen_command(tenant_id: str, event_types: str, port: int) -> None:
    """Subscribe a local receiver for TENANT_ID and print each delivery, verified, until
    Ctrl-C; the subscription is deleted then. Development only."""
    settings = current_settings()
    if settings.env == "production":
        click.echo("error: listen is for development only (WEBHOOKS_ENV=production): it "
                   "subscribes a receiver on this machine, which production refuses",
                   err=True)
        raise SystemExit(1)
    if db.session.get(Tenant, tenant_id) is None:
        click.echo(f"error: tenant {tenant_id} does not exist (flask --app webhooks_api "
                   f"tenants create {tenant_id} --with-key)", err=True)
        raise SystemExit(1)
    types = [part.strip() for part in event_types.split(",") if part.strip()]
    try:
        server = _Receiver(("127.0.0.1", port), _DeliveryHandler)
    except OSError as error:
        raise click.BadParameter(f"cannot listen on 127.0.0.1:{port}: {error}",
                                 param_hint="--port") from None
    url = f"http://127.0.0.1:{server.server_port}{PATH}"
    try:
        created = create_subscription(db.session, settings, tenant_id, url=url,
                                      event_types=types,
                                      description="flask listen: deleted when it stops")
    except DomainError as error:
        server.server_close()
        _fail(error)
    server.secret = created.secret
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    _show(f"Ready: subscription {created.id} sends {tenant_id}'s {', '.join(types)} events "
          f"to {url}; Ctrl-C stops and deletes it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not skip the delete
        server.server_close()
        delete_subscription(db.session, tenant_id, created.id)
        _show(f"deleted subscription {created.id}")
