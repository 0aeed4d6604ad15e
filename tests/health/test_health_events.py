"""The operational events `recovered`, `exhausted` and `secret_rotated` (docs/HEALTH.md
"Operational events"), end to end on the session's worker (retry schedule 1,1,1 s) and a
receiver on 127.0.0.1: each reaches the tenant's subscriptions that name it, never the
subscription it is about, and never a subscription to `*`."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select

from tests.support.engine_support import (
    create_subscription,
    deliveries_of,
    publish_via_api,
    subscription,
)
from tests.support.helpers import wait_for
from tests.support.receiver import Reply
from webhooks_api.domain.models import Event

FAILING = "webhook.subscription.failing"
RECOVERED = "webhook.subscription.recovered"
EXHAUSTED = "webhook.delivery.exhausted"
ROTATED = "webhook.subscription.secret_rotated"
API = "/api/v1/webhooks"


def _bodies(receiver, path: str) -> list[dict]:
    return [json.loads(post.body) for post in receiver.posts(path)]


def _stored(session, event_type: str) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Event)
                          .where(Event.event_type == event_type))


def _assert_star_got_none(session, star: dict) -> None:
    """A subscription to `*` has no delivery of an operational type (not even a disabled
    one): `*` never matches them."""
    assert [d.event_type for d in deliveries_of(session, star["id"])
            if d.event_type.startswith("webhook.")] == []


def _all_succeeded(session, subscription_id: str, count: int) -> bool:
    return [d.status for d in deliveries_of(session, subscription_id)] == ["success"] * count


def test_recovered_is_published_once_after_the_failing_warning(app, client, tenant,
                                                               receiver, session, worker):
    warn_after = app.config["WEBHOOKS_SETTINGS"].failing_warning_after
    healthy = threading.Event()
    # Once healthy, the sick subscription's answers wait for one another: the successes are
    # recorded at the same moment by as many workers.
    together = threading.Barrier(warn_after)
    answered = Counter()
    lock = threading.Lock()

    def respond(request):
        with lock:
            answered[request.path] += 1
            number = answered[request.path]
        if request.path == "/sick":
            if not healthy.is_set():
                return Reply(500)
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(timeout=5)
            return Reply(200)
        # One failure, no warning: its success publishes nothing.
        return Reply(500 if request.path == "/flaky" and number == 1 else 200)

    receiver.respond = respond
    sick = create_subscription(client, tenant, f"{receiver.base_url}/sick",
                               ["invoice.created"])
    flaky = create_subscription(client, tenant, f"{receiver.base_url}/flaky",
                                ["invoice.created"])
    create_subscription(client, tenant, f"{receiver.base_url}/watch", [FAILING, RECOVERED])
    star = create_subscription(client, tenant, f"{receiver.base_url}/all", ["*"])
    for marker in range(warn_after):  # as many first attempts fail as raise `failing`
        publish_via_api(client, tenant, data={"n": marker})
    wait_for(lambda: subscription(session, sick["id"]).health_stage == "failing", timeout=30,
             message="the failing stage")
    healthy.set()  # the deliveries' next attempts succeed, about at once

    wait_for(lambda: _all_succeeded(session, sick["id"], warn_after)
             and _all_succeeded(session, flaky["id"], warn_after)
             and subscription(session, sick["id"]).health_stage is None, timeout=60,
             message="every delivery to succeed")
    wait_for(lambda: len(receiver.posts("/watch")) >= 2, timeout=30,
             message="the failing and recovered events")
    assert _stored(session, RECOVERED) == 1
    assert sorted(body["type"] for body in _bodies(receiver, "/watch")) == [FAILING, RECOVERED]
    [recovered] = [body for body in _bodies(receiver, "/watch") if body["type"] == RECOVERED]
    assert recovered["tenant_id"] == tenant["id"]
    assert recovered["data"]["subscription_id"] == sick["id"]
    assert recovered["data"]["url"] == sick["url"]
    assert recovered["data"]["delivery_id"] in {d.id for d in deliveries_of(session, sick["id"])}
    assert subscription(session, flaky["id"]).failure_count == 1
    _assert_star_got_none(session, star)


def test_exhausted_reports_the_failed_delivery_once_and_never_recurses(
        client, tenant, receiver, session, worker):
    receiver.respond = lambda request: Reply(200 if request.path == "/all" else 500)
    # Both failing, both asking for `exhausted`: each would be told of the other's
    # exhausted delivery, for ever, if a delivery of that event raised one in turn.
    dead = create_subscription(client, tenant, f"{receiver.base_url}/dead?token=url-secret",
                               ["invoice.created", EXHAUSTED],
                               headers={"X-Token": "header-secret"})
    watch = create_subscription(client, tenant, f"{receiver.base_url}/watch", [EXHAUSTED])
    star = create_subscription(client, tenant, f"{receiver.base_url}/all", ["*"])
    event_id = publish_via_api(client, tenant, data={"card": "payload-secret"})

    # Four attempts to `dead`, then four of its `exhausted` event to `watch`.
    wait_for(lambda: [d.status for d in deliveries_of(session, watch["id"])] == ["failed"],
             timeout=60, message="the exhausted event's own delivery to fail")
    [failed] = deliveries_of(session, dead["id"])
    assert failed.status == "failed" and failed.attempt_count == 4
    # Its delivery ended `failed` in the transaction that would have stored another.
    assert _stored(session, EXHAUSTED) == 1
    posts = receiver.posts("/watch")
    assert len(posts) == 4 and len({post.body for post in posts}) == 1
    body = json.loads(posts[0].body)
    assert body["type"] == EXHAUSTED and body["tenant_id"] == tenant["id"]
    assert body["data"] == {
        "subscription_id": dead["id"], "delivery_id": failed.id, "event_id": event_id,
        "event_type": "invoice.created", "attempt_count": 4, "last_response_status": 500,
        "last_error": "HTTP 500"}
    for secret in (b"payload-secret", b"header-secret", b"url-secret"):
        assert secret not in posts[0].body
    # Never to the subscription it is about.
    assert {json.loads(post.body)["type"] for post in receiver.posts()
            if post.path.startswith("/dead")} == {"invoice.created"}
    _assert_star_got_none(session, star)


def test_secret_rotation_is_announced_without_a_secret(client, tenant, receiver, session,
                                                       worker):
    rotated = create_subscription(client, tenant, f"{receiver.base_url}/rotated",
                                  ["invoice.created", ROTATED])
    watch = create_subscription(client, tenant, f"{receiver.base_url}/watch", [ROTATED])
    star = create_subscription(client, tenant, f"{receiver.base_url}/all", ["*"])
    rotate = f"{API}/subscriptions/{rotated['id']}/rotate-secret"
    with_grace = client.post(rotate, headers=tenant["headers"],
                             json={"grace_period_seconds": 3600})
    at_once = client.post(rotate, headers=tenant["headers"], json={"grace_period_seconds": 0})
    assert with_grace.status_code == at_once.status_code == 200

    wait_for(lambda: [d.status for d in deliveries_of(session, watch["id"])]
             == ["success"] * 2, timeout=30, message="both rotations announced")
    by_grace = {body["data"]["previous_secret_expires_at"] is not None: body
                for body in _bodies(receiver, "/watch")}
    for body in by_grace.values():
        assert body["type"] == ROTATED and body["tenant_id"] == tenant["id"]
        assert sorted(body["data"]) == ["previous_secret_expires_at", "rotated_at",
                                        "subscription_id"]
        assert body["data"]["subscription_id"] == rotated["id"]
    graced = by_grace[True]["data"]
    expires_at = datetime.fromisoformat(graced["previous_secret_expires_at"])
    assert expires_at == datetime.fromisoformat(with_grace.json["previous_secret_expires_at"])
    assert expires_at - datetime.fromisoformat(graced["rotated_at"]) == timedelta(hours=1)
    assert by_grace[False]["data"]["previous_secret_expires_at"] is None
    raw = b"".join(post.body for post in receiver.posts())
    assert b"whsec_" not in raw
    for secret in (rotated["secret"], with_grace.json["secret"], at_once.json["secret"]):
        assert secret.encode() not in raw
    assert deliveries_of(session, rotated["id"]) == []  # not to the rotated one itself
    _assert_star_got_none(session, star)
