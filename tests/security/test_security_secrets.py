"""Secrets: signing secrets and custom header values encrypted at rest with a rotatable
key; no secret, key, signature or header value in logs, task messages (what the broker and
Flower hold) or API error bodies."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, text
from standardwebhooks.webhooks import Webhook

from tests.conftest import ROOT
from tests.support.engine_support import (
    celery_client,
    isolated_worker,
    log_offset,
    log_since,
    new_prefix,
    queued_messages,
)
from tests.support.helpers import wait_for
from tests.support.security_support import override_settings
from webhooks_api.config import DEVELOPMENT_ENCRYPTION_KEY
from webhooks_api.domain.models import Subscription
from webhooks_api.domain.secrets import SecretBox, new_signing_secret
from webhooks_api.messaging.names import PUBLISH_QUEUE, PUBLISH_TASK

SUBSCRIPTIONS = "/api/v1/webhooks/subscriptions"
OLD_KEY = DEVELOPMENT_ENCRYPTION_KEY  # what the test app encrypts with
RECEIVER_TOKEN = "receiver-token-3f9a1c"  # a custom header value: the receiver's credential


def _flask(test_env: dict[str, str], *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webhooks_api", *args],
        env={**os.environ, **test_env, **extra_env}, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )


def _give_previous_secret(session, subscription_id: str) -> str:
    """A rotation in its grace period, as the rotate-secret endpoint leaves it."""
    previous = new_signing_secret()
    session.execute(text("""
        UPDATE subscriptions SET previous_secret_ciphertext = :ciphertext,
               previous_secret_expires_at = now() + interval '1 hour'
        WHERE id = :id"""), {"ciphertext": SecretBox((OLD_KEY,)).encrypt(previous),
                             "id": subscription_id})
    session.commit()
    return previous


def test_key_rotation_reencrypts_every_secret(client, tenant, receiver, session, test_env):
    secrets, paths, tokens = {}, {}, {}
    for number in range(3):
        created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
            "url": f"{receiver.url}?n={number}", "event_types": ["invoice.created"],
            "headers": {"X-Token": f"token-{number}"}})
        assert created.status_code == 201, created.json
        secrets[created.json["id"]] = [created.json["secret"]]
        paths[created.json["id"]] = f"/hook?n={number}"
        tokens[created.json["id"]] = f"token-{number}"
    first_id = sorted(secrets)[0]
    secrets[first_id].append(_give_previous_secret(session, first_id))
    before = {s.id: s.updated_at for s in session.scalars(select(Subscription))}

    new_key = Fernet.generate_key().decode()
    result = _flask(test_env, "secrets", "reencrypt", "--batch-size", "2",
                    WEBHOOKS_ENCRYPTION_KEY=f"{new_key},{OLD_KEY}")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted the secrets and header values of 3 subscriptions" in result.stdout

    session.expire_all()
    new_only, old_only = Fernet(new_key.encode()), Fernet(OLD_KEY.encode())
    for subscription in session.scalars(select(Subscription)):
        ciphertexts = [subscription.secret_ciphertext, subscription.previous_secret_ciphertext]
        ciphertexts = [c for c in ciphertexts if c]
        assert [new_only.decrypt(c.encode()).decode() for c in ciphertexts] \
            == secrets[subscription.id]
        header_ciphertext = subscription.header_ciphertexts["X-Token"]
        assert new_only.decrypt(header_ciphertext.encode()).decode() \
            == tokens[subscription.id]
        ciphertexts.append(header_ciphertext)
        for ciphertext in ciphertexts:
            with pytest.raises(InvalidToken):
                old_only.decrypt(ciphertext.encode())
        assert subscription.updated_at == before[subscription.id]

    # The old key can go: a worker holding only the new one signs every delivery, and
    # receivers verify with the secrets they were given (both during the grace period).
    with isolated_worker(test_env, {"WEBHOOKS_ENCRYPTION_KEY": new_key}) as worker:
        worker.publish("invoice.created", {"invoice_id": "inv_1"}, tenant["id"])
        wait_for(lambda: len(receiver.requests) == 3, timeout=30, message="three deliveries")
    by_path = {request.path: request for request in receiver.requests}
    for subscription_id, subscription_secrets in secrets.items():
        request = by_path[paths[subscription_id]]
        assert request.headers["X-Token"] == tokens[subscription_id]
        for secret in subscription_secrets:
            verified = Webhook(secret).verify(request.body, dict(request.headers))
            assert verified["tenant_id"] == tenant["id"]


def test_reencrypt_names_a_secret_no_key_decrypts(app, client, tenant):
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": "https://127.0.0.1:9/hook", "event_types": ["invoice.created"]})
    assert created.status_code == 201
    other_key = Fernet.generate_key().decode()
    with override_settings(app, encryption_keys=(other_key,)):
        result = app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
    assert result.exit_code == 1
    assert f"subscription {created.json['id']}" in result.output
    assert "WEBHOOKS_ENCRYPTION_KEY" in result.output


def _secret_material(secret: str, api_key: str, ciphertext: str,
                     header_value: str) -> set[str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return {secret, secret.removeprefix("whsec_"), key.hex(),
            base64.urlsafe_b64encode(key).decode(), api_key, api_key.removeprefix("whk_"),
            ciphertext, OLD_KEY, header_value}


def _signatures(request) -> set[str]:
    headers = {name.lower(): value for name, value in request.headers.items()}
    found = set(headers["x-webhook-signature"].split(","))
    found |= {part.split(",", 1)[1] for part in headers["webhook-signature"].split(" ")}
    return found


_AUTH_FAILURES = [
    lambda api_key, secret: {},
    lambda api_key, secret: {"Authorization": f"Bearer {api_key}0"},  # a near miss
    lambda api_key, secret: {"Authorization": f"Bearer {secret}"},
    lambda api_key, secret: {"Authorization": api_key},  # no scheme
]


def _error_bodies(app, client, tenant, secret: str,
                  subscription_id: str) -> dict[str, list[str]]:
    """Every API route, every method, answered with an error: no key, a wrong key, the
    secret as a key, and bodies that carry secret material where a careless error message
    would echo it (URL credentials, header values, an unknown field)."""
    bad_bodies = [
        {"url": f"https://hooks:{secret}@example.com/hook", "event_types": ["invoice.created"]},
        {"url": "https://example.com/hook", "event_types": ["invoice.created"],
         "headers": {"X-Token": f"{secret}\r\nX-Injected: 1", "Authorization": secret}},
        {"event_type": "invoice.created", "data": {"secret": secret * 20000}},
        {"unexpected": secret, "url": secret},
    ]
    auths = [auth(tenant["api_key"], secret) for auth in _AUTH_FAILURES]
    bodies: dict[str, list[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", subscription_id).replace(
                f"<string:{argument}>", subscription_id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            requests = [{"headers": auth} for auth in auths]
            requests += [{"headers": tenant["headers"], "json": body} for body in bad_bodies]
            requests.append({"headers": {**tenant["headers"],
                                         "Content-Type": "application/json"},
                             "data": f'{{"secret": "{secret}"'})  # malformed JSON
            answers = [client.open(path, method=method, **request) for request in requests]
            bodies[f"{method} {path}"] = [answer.get_data(as_text=True)
                                          for answer in answers if answer.status_code >= 400]
    return bodies


def test_no_secret_material_in_logs_task_messages_or_error_bodies(
        app, client, tenant, receiver, session, test_env, caplog):
    caplog.set_level(logging.DEBUG, logger="webhooks_api")
    caplog.set_level(logging.DEBUG, logger="webhooks_worker")
    created = client.post(SUBSCRIPTIONS, headers=tenant["headers"], json={
        "url": receiver.url, "event_types": ["invoice.*"],
        "headers": {"Authorization": f"Bearer {RECEIVER_TOKEN}"}})
    assert created.status_code == 201
    secret, subscription_id = created.json["secret"], created.json["id"]
    ciphertext = session.get(Subscription, subscription_id).secret_ciphertext
    material = _secret_material(secret, tenant["api_key"], ciphertext, RECEIVER_TOKEN)
    hashed_key = hashlib.sha256(tenant["api_key"].encode()).hexdigest()
    material.add(hashed_key)

    env = {**test_env, "WEBHOOKS_BROKER_KEY_PREFIX": new_prefix(test_env)}
    sender = celery_client(env)
    try:
        # The message publish.delay() leaves in Redis, read before any worker takes it.
        sender.send_task(PUBLISH_TASK, args=["invoice.created", {"invoice_id": "inv_1"},
                                             tenant["id"]],
                         kwargs={"event_id": "evt_first"}, queue=PUBLISH_QUEUE)
    finally:
        sender.close()
    queued = queued_messages(env, PUBLISH_QUEUE)
    assert len(queued) == 1 and "evt_first" in queued[0]
    offset = log_offset()
    with isolated_worker(test_env, prefix=env["WEBHOOKS_BROKER_KEY_PREFIX"]) as worker:
        wait_for(lambda: len(receiver.requests) == 1, timeout=30, message="first delivery")
        # What Flower shows: every task event, with the arguments of publish and deliver.
        with worker.task_events() as events:
            worker.publish("invoice.paid", {"invoice_id": "inv_1"}, tenant["id"],
                           event_id="evt_second")
            wait_for(lambda: len(receiver.requests) == 2, timeout=30,
                     message="second delivery")
            wait_for(lambda: {"webhooks.publish", "webhooks.deliver"} <= {
                e.get("name") for e in events if e["type"] == "task-received"},
                timeout=30, message="task events of both tasks")
    worker_log = log_since(offset)

    for request in receiver.requests:
        material |= _signatures(request)
        assert request.headers["Authorization"] == f"Bearer {RECEIVER_TOKEN}"
    task_events = json.dumps([e for e in events if e["type"].startswith("task-")])
    assert "evt_second" in task_events and "dlv_" in task_events
    assert "Task webhooks.deliver[" in worker_log
    error_bodies = _error_bodies(app, client, tenant, secret, subscription_id)
    assert all(len(bodies) >= len(_AUTH_FAILURES) for bodies in error_bodies.values())
    # At rest: the subscription row holds Fernet ciphertexts, the key row a SHA-256, the
    # attempts the header's name with its value redacted.
    stored_rows = json.dumps([
        [str(value) for value in row]
        for table in ("subscriptions", "api_keys", "delivery_attempts")
        for row in session.execute(text(f"SELECT * FROM {table}"))
    ])
    assert ciphertext in stored_rows and hashed_key in stored_rows
    assert "'Authorization': '[redacted]'" in stored_rows
    at_rest_material = material - {ciphertext, hashed_key}
    places = {
        "database rows": stored_rows,
        "captured logs": caplog.text,
        "worker log": worker_log,
        "queued messages": "\n".join(queued),
        "task events": task_events,
        "API error bodies": json.dumps(error_bodies),
    }
    leaks = [(place, needle[:12]) for place, content in places.items()
             for needle in (at_rest_material if place == "database rows" else material)
             if needle in content]
    assert leaks == []
