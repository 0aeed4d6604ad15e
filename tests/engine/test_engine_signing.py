"""Every delivery verifies with the public standardwebhooks library and with a plain HMAC
of X-Webhook-Signature: during a rotation grace period with the new and the previous
secret, and after it with the new secret only."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.engine_support import create_subscription, deliveries_of, publish_via_api
from tests.support.helpers import wait_for
from webhooks_api.domain.models import Subscription
from webhooks_api.domain.secrets import SecretBox, new_signing_secret
from webhooks_api.extensions import db


def _rotate(app, subscription_id: str, grace: str) -> str:
    """What the rotate endpoint stores: a new secret, the old one kept until `grace`."""
    new_secret = new_signing_secret()
    with app.app_context():
        box = SecretBox(app.config["WEBHOOKS_SETTINGS"].encryption_keys)
        subscription = db.session.get(Subscription, subscription_id)
        subscription.previous_secret_ciphertext = subscription.secret_ciphertext
        subscription.secret_ciphertext = box.encrypt(new_secret)
        subscription.previous_secret_expires_at = text(f"now() + interval '{grace}'")
        db.session.commit()
    return new_secret


def _plain_hmac(secret: str, body: bytes) -> str:
    return hmac.new(base64.b64decode(secret.removeprefix("whsec_")), body,
                    hashlib.sha256).hexdigest()


def _next_delivery(client, tenant, receiver):
    count = len(receiver.posts())
    publish_via_api(client, tenant)
    wait_for(lambda: len(receiver.posts()) == count + 1, message="the delivery")
    request = receiver.posts()[-1]
    return request.body, {name.lower(): value for name, value in request.headers.items()}


def test_signatures_through_a_rotation(app, client, tenant, receiver, worker, session):
    created = create_subscription(client, tenant, receiver.url)
    old_secret = created["secret"]

    body, headers = _next_delivery(client, tenant, receiver)
    assert headers["x-webhook-signature"] == _plain_hmac(old_secret, body)
    Webhook(old_secret).verify(body, headers)

    new_secret = _rotate(app, created["id"], "1 hour")
    body, headers = _next_delivery(client, tenant, receiver)
    assert headers["x-webhook-signature"].split(",") == [
        _plain_hmac(new_secret, body), _plain_hmac(old_secret, body)]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new_secret, old_secret):
        assert Webhook(secret).verify(body, headers)["type"] == "invoice.created"

    # The grace period is over: only the new secret signs.
    with app.app_context():
        db.session.execute(text("UPDATE subscriptions SET previous_secret_expires_at = "
                                "now() - interval '1 second' WHERE id = :id"),
                           {"id": created["id"]})
        db.session.commit()
    body, headers = _next_delivery(client, tenant, receiver)
    assert headers["x-webhook-signature"] == _plain_hmac(new_secret, body)
    Webhook(new_secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(body, headers)
    wait_for(lambda: all(d.status == "success" for d in deliveries_of(session)),
             message="every delivery recorded")
