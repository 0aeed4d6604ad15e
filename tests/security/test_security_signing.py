"""Signing, property-tested: any body, any message id, any timestamp, any number of
secrets during a rotation. Verified with the public `standardwebhooks` library and with the
plain HMAC a receiver writes by hand; a wrong secret or a changed byte never verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks_api.domain.secrets import SECRET_PREFIX
from webhooks_worker.delivery.signing import (
    SIGNATURE_HEADERS,
    redact_signatures,
    signature_headers,
    standard_signature,
)

secrets_ = st.binary(min_size=32, max_size=32).map(
    lambda key: SECRET_PREFIX + base64.b64encode(key).decode())
rotations = st.lists(secrets_, min_size=1, max_size=4, unique=True)
message_ids = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)
bodies = st.text().map(str.encode)  # the library verifies text; JSON bodies are UTF-8
timestamps = st.integers(min_value=0, max_value=2**33)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def _headers(signed: dict[str, str], message_id: str, timestamp: int) -> dict[str, str]:
    return {**signed, "webhook-id": message_id, "webhook-timestamp": str(timestamp)}


def _plain_hmac_verifies(secret: str, body: bytes, header: str) -> bool:
    """What a receiver following a plain-HMAC example does with X-Webhook-Signature."""
    expected = hmac.new(_key(secret), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, given) for given in header.split(","))


@given(rotations, message_ids, bodies, timestamps)
def test_signature_matches_the_standard_for_any_timestamp(secrets, message_id, body,
                                                          timestamp):
    signed = signature_headers(secrets, message_id, timestamp, body)
    when = datetime.fromtimestamp(timestamp, UTC)
    expected = [Webhook(secret).sign(message_id, when, body.decode()) for secret in secrets]
    assert signed["webhook-signature"].split(" ") == expected  # newest key first
    assert signed["X-Webhook-Signature"].split(",") == [
        hmac.new(_key(secret), body, hashlib.sha256).hexdigest() for secret in secrets]


@given(rotations, secrets_, message_ids, bodies, st.integers(-240, 240))
def test_every_secret_of_a_rotation_verifies_and_no_other(secrets, stranger, message_id,
                                                          body, skew_seconds):
    timestamp = int(time.time()) + skew_seconds  # within the library's tolerance
    signed = signature_headers(secrets, message_id, timestamp, body)
    headers = _headers(signed, message_id, timestamp)
    for secret in secrets:
        Webhook(secret).verify(body, headers, json_parse=False)
        assert _plain_hmac_verifies(secret, body, signed["X-Webhook-Signature"])
    if stranger not in secrets:
        assert not _plain_hmac_verifies(stranger, body, signed["X-Webhook-Signature"])
        try:
            Webhook(stranger).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            pass
        else:
            raise AssertionError("a secret outside the rotation verified")


@given(secrets_, message_ids, bodies, st.data())
def test_any_change_breaks_the_signature(secret, message_id, body, data):
    timestamp = int(time.time())
    signed = signature_headers([secret], message_id, timestamp, body)
    changed_body = data.draw(bodies.filter(lambda other: other != body))
    changed_id = data.draw(message_ids.filter(lambda other: other != message_id))
    for tampered_body, tampered_id, tampered_time in [
        (changed_body, message_id, timestamp),
        (body, changed_id, timestamp),
        (body, message_id, timestamp + 1),
    ]:
        try:
            Webhook(secret).verify(tampered_body, _headers(signed, tampered_id, tampered_time),
                                   json_parse=False)
        except WebhookVerificationError:
            pass
        else:
            raise AssertionError("a changed message verified")
    assert not _plain_hmac_verifies(secret, changed_body, signed["X-Webhook-Signature"])


@given(secrets_, message_ids, st.binary(), timestamps)
def test_standard_signature_signs_bytes_as_sent(secret, message_id, body, timestamp):
    """Any bytes, not only UTF-8: the signed message is id.timestamp. then the raw body."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    assert standard_signature(_key(secret), message_id, timestamp, body) \
        == "v1," + base64.b64encode(digest).decode()


@given(rotations, message_ids, bodies, timestamps)
def test_stored_headers_never_hold_a_signature(secrets, message_id, body, timestamp):
    signed = signature_headers(secrets, message_id, timestamp, body)
    stored = redact_signatures({**signed, "X-Webhook-Event-Id": message_id})
    assert {stored[name] for name in SIGNATURE_HEADERS} == {"[redacted]"}
    assert stored["X-Webhook-Event-Id"] == message_id
