"""The pure parts of the engine: signing, backoff and filter matching, with fixed vectors
and hypothesis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks_api.domain.catalogue import BUILTIN_EVENT_TYPES, filters_matching, matches
from webhooks_api.domain.secrets import new_signing_secret
from webhooks_worker.delivery.backoff import next_delay, parse_retry_after
from webhooks_worker.delivery.signing import redact_signatures, signature_headers

# The Standard Webhooks / Svix documentation example; the hex value checked with
# `openssl dgst -sha256 -mac HMAC` on the decoded key.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_STANDARD = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_HEX = "e2cb4f5251572539d458bfb8a7adb533b08801e6a794467e06f771debbb0818b"

DEFAULT = (300, 3600, 21600)


# ---- signing ----

def test_signature_headers_match_the_published_vector():
    headers = signature_headers([VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert headers == {"X-Webhook-Signature": VECTOR_HEX, "webhook-signature": VECTOR_STANDARD}


def test_rotation_puts_the_new_signature_first_in_both_families():
    new, previous = new_signing_secret(), VECTOR_SECRET
    headers = signature_headers([new, previous], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    hex_values = headers["X-Webhook-Signature"].split(",")
    standard_values = headers["webhook-signature"].split(" ")
    assert hex_values[1] == VECTOR_HEX and standard_values[1] == VECTOR_STANDARD
    assert hex_values[0] == hmac.new(base64.b64decode(new[6:]), VECTOR_BODY,
                                     hashlib.sha256).hexdigest()
    assert len(hex_values) == len(standard_values) == 2


def test_signature_values_are_redacted_and_nothing_else():
    headers = {"X-Webhook-Signature": "abc", "webhook-signature": "v1,xyz",
               "webhook-id": "evt_1", "X-Custom": "kept"}
    assert redact_signatures(headers) == {
        "X-Webhook-Signature": "[redacted]", "webhook-signature": "[redacted]",
        "webhook-id": "evt_1", "X-Custom": "kept"}


@given(body=st.text(max_size=300), event_id=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
       secrets=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=2))
def test_every_secret_verifies_with_standardwebhooks_and_plain_hmac(body, event_id, secrets):
    whsecs = ["whsec_" + base64.b64encode(raw).decode() for raw in secrets]
    raw_body = body.encode()
    timestamp = int(time.time())
    headers = {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
               **signature_headers(whsecs, event_id, timestamp, raw_body)}
    hex_values = headers["X-Webhook-Signature"].split(",")
    for whsec, raw in zip(whsecs, secrets, strict=True):
        Webhook(whsec).verify(raw_body, headers, json_parse=False)
        assert hmac.new(raw, raw_body, hashlib.sha256).hexdigest() in hex_values
    stranger = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    if stranger not in whsecs:
        with pytest.raises(WebhookVerificationError):
            Webhook(stranger).verify(raw_body, headers, json_parse=False)


# ---- backoff ----

@pytest.mark.parametrize(("attempts_made", "status", "retry_after", "expected"), [
    (1, 500, None, 300),
    (2, 500, None, 3600),
    (3, None, None, 21600),          # a timeout or connection error has no status
    (4, 500, None, None),            # four attempts in all, then failed
    (1, 429, "120", 300),            # asked for less than scheduled: the schedule wins
    (1, 429, "450", 450),            # between the scheduled delay and twice it: honoured
    (1, 503, "100000", 600),         # more than twice: clamped to twice
    (2, 503, "  5000 ", 5000),
    (1, 500, "450", 300),            # Retry-After counts only on 429 and 503
    (1, 429, "soon", 300),           # unusable header: the schedule
    (1, 429, "-5", 300),
    (1, 429, "1.5", 300),
    (1, 429, "²", 300),              # a digit to str.isdigit(), not to the HTTP grammar
    (3, 429, "100000", 43200),
    (4, 429, "10", None),
])
def test_next_delay_vectors(attempts_made, status, retry_after, expected):
    assert next_delay(DEFAULT, attempts_made, status, retry_after) == expected


def test_retry_after_as_an_http_date():
    now = datetime(2025, 9, 30, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=900), usegmt=True)
    assert parse_retry_after(later, now) == 900
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert parse_retry_after("Wed, 31 Sep 2025 99:00:00 GMT", now) is None


@given(schedule=st.lists(st.integers(0, 10**6), min_size=1, max_size=6).map(tuple),
       attempts_made=st.integers(1, 8), status=st.sampled_from([None, 400, 429, 500, 503]),
       retry_after=st.one_of(st.none(), st.text(max_size=40),
                             st.integers(0, 10**9).map(str)))
def test_next_delay_stays_within_the_clamp(schedule, attempts_made, status, retry_after):
    delay = next_delay(schedule, attempts_made, status, retry_after)
    if attempts_made > len(schedule):
        assert delay is None
        return
    scheduled = schedule[attempts_made - 1]
    if status in (429, 503):
        assert scheduled <= delay <= 2 * scheduled
    else:
        assert delay == scheduled


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value):
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0


# ---- matching ----

@pytest.mark.parametrize(("event_filter", "event_type", "expected"), [
    ("invoice.paid", "invoice.paid", True),
    ("invoice.paid", "invoice.created", False),
    ("invoice.*", "invoice.payment_failed", True),
    ("invoice.*", "payment.failed", False),
    ("*", "invoice.paid", True),
    ("*", "webhook.test", False),                       # `*` never selects operational types
    ("*", "webhook.subscription.disabled", False),
    ("webhook.*", "webhook.subscription.failing", True),
    ("webhook.*", "webhook.test", True),
    ("webhook.test", "webhook.test", True),
    ("subscription.*", "webhook.subscription.failing", False),  # the first segment only
    ("acme.*", "acme.order.shipped", True),
])
def test_matching_vectors(event_filter, event_type, expected):
    assert matches(event_filter, event_type) is expected


segment = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(category=segment, rest=st.lists(segment, min_size=1, max_size=3), other=segment)
def test_matching_rules_hold_for_any_type(category, rest, other):
    event_type = ".".join([category, *rest])
    operational = category == "webhook"
    assert matches(event_type, event_type)
    assert matches(f"{category}.*", event_type)
    assert matches("*", event_type) is not operational
    assert matches(f"{other}.*", event_type) is (other == category)
    assert set(filters_matching(event_type)) == {
        event_type, f"{category}.*", *(() if operational else ("*",))}


def test_every_builtin_type_is_matched_by_its_category():
    for event_type in BUILTIN_EVENT_TYPES:
        assert matches(event_type.split(".")[0] + ".*", event_type)
