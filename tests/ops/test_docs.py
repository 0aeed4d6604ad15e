"""Every fenced block of README.md and docs/*.md is tested (tests/doc_blocks.py says how
each is): the Python and shell examples run, in document order, against one real stack of
this module (gunicorn, the test worker, a receiver, Flower) and what they promise happens;
the JSON bodies are validated against the live /openapi.json; the other blocks are checked
against the code or a real delivery (tests/doc_checks.py); the rest is on a short
allow-list with reasons.

Python blocks of one document share a namespace, like a reader's session; shell blocks run
in bash with `-euo pipefail`. The harness provides what a document says its reader has (the
variables of USAGE.md's table, a real delivery's `headers` and `body` in receiving.md, the
README's Celery app of another service and its Flask app's `db`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests
from celery import Celery

from tests.support import doc_blocks, processes
from tests.support.doc_checks import CHECKS, Live
from tests.support.helpers import wait_for
from tests.support.openapi_examples import validate
from webhooks_api.domain.catalogue_doc import render as render_catalogue
from webhooks_api.extensions import db
from webhooks_verify import verify

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCKS = doc_blocks.all_blocks()
FLOWER_AUTH = "docs:docs-pass-1"


def examples(document: str) -> list[doc_blocks.Block]:
    """The executable blocks of `document` this module runs."""
    return doc_blocks.executed_by(document, BLOCKS, CHECKS)


def run_examples(document: str, env: dict[str, str], namespace: dict, cwd: Path,
                 monkeypatch) -> None:
    blocks = examples(document)
    assert blocks, f"{document} has no executable example"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bin_dir = str(Path(sys.executable).parent)
    shell_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for block in blocks:
        where = f"{block}:\n{block.code}"
        if doc_blocks.EXECUTABLE[block.language] == "python":
            try:
                exec(compile(block.code, str(block), "exec"), namespace)  # noqa: S102
            except Exception as error:
                raise AssertionError(f"{where}\nraised {error!r}") from error
        else:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code],
                                    env=shell_env, cwd=cwd, capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 0, f"{where}\nstdout: {result.stdout}\n" \
                                           f"stderr: {result.stderr}"


def test_every_block_is_executed_validated_checked_or_allow_listed():
    assert doc_blocks.problems(BLOCKS, CHECKS) == []
    ours = {name.split("::")[1] for name in doc_blocks.RUNNERS.values()
            if name.startswith("tests/ops/test_docs.py::")}
    assert ours <= set(globals()), "a runner named in doc_blocks.RUNNERS is not a test here"
    assert len(doc_blocks.ALLOW_LIST) <= 3, "the allow-list is for what cannot run"


def test_an_untested_block_fails_the_classification(tmp_path):
    """A new example nobody runs or checks breaks the suite (and a fence left open does)."""
    for path in doc_blocks.documents():
        copy = tmp_path / path.relative_to(doc_blocks.ROOT)
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(path.read_text())
    health = tmp_path / "docs" / "HEALTH.md"
    health.write_text(health.read_text() + "\n```json\n{\"status\": \"ready\"}\n```\n"
                      "\n```sh\nflask --app webhooks_api stats\n```\n"
                      "\n```text\nan output sample\n```\n")
    found = doc_blocks.problems(doc_blocks.all_blocks(tmp_path), CHECKS)
    assert [problem.split(" (", 1)[0] for problem in found] == \
        ["docs/HEALTH.md#4", "docs/HEALTH.md#5", "docs/HEALTH.md#6"], found
    health.write_text(health.read_text() + "\n```sh\necho never closed\n")
    with pytest.raises(doc_blocks.DocumentError, match="HEALTH.md:.*never closes"):
        doc_blocks.all_blocks(tmp_path)


@pytest.fixture(scope="module")
def api(test_env, worker):
    with processes.web(test_env, workers=1) as base:
        yield base


@pytest.fixture
def reader_env(test_env, api, tenant, receiver) -> dict[str, str]:
    return {**test_env, "WEBHOOKS_API": api, "WEBHOOKS_API_KEY": tenant["api_key"],
            "WEBHOOKS_TENANT": tenant["id"], "RECEIVER_URL": receiver.url}


def _subscribe(client, tenant, url: str, event_types: list[str]) -> dict:
    created = client.post("/api/v1/webhooks/subscriptions", headers=tenant["headers"],
                          json={"url": url, "event_types": event_types})
    assert created.status_code == 201, created.json
    return created.json


def test_usage_examples(reader_env, client, tenant, receiver, tmp_path, monkeypatch):
    # Publishing comes before subscribing in the guide: this subscription receives those
    # events; webhook.test reaches the receiver only through the guide's own subscription.
    secret = _subscribe(client, tenant, receiver.url, ["*"])["secret"]
    run_examples("docs/USAGE.md", reader_env, {"__name__": "docs"}, tmp_path, monkeypatch)

    expected = {"invoice.paid", "invoice.voided", "invoice.created", "invoice.payment_failed",
                "customer.created", "webhook.test"}
    wait_for(lambda: {json.loads(r.body)["type"] for r in receiver.requests} >= expected,
             timeout=60, message=f"deliveries of {sorted(expected)}")
    by_type = {json.loads(r.body)["type"]: r for r in receiver.requests}
    for event_type, event_id in (("invoice.paid", "inv_42-paid"),
                                 ("invoice.voided", "inv_42-voided"),
                                 ("customer.created", "cus_7-created"),
                                 ("invoice.created", "inv_42-created"),
                                 ("invoice.payment_failed", "inv_42-failed")):
        request = by_type[event_type]
        assert verify(secret, request.headers, request.body)["id"] == event_id


def test_receiving_examples(client, tenant, receiver, worker, tmp_path, monkeypatch):
    secret = _subscribe(client, tenant, receiver.url, ["invoice.*"])["secret"]
    client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_docs"}})
    wait_for(lambda: receiver.requests, timeout=30, message="a real delivery")
    delivery = receiver.requests[0]
    headers = delivery.headers
    (tmp_path / "body.json").write_bytes(delivery.body)
    env = {"WEBHOOK_SECRET": secret,
           "WEBHOOK_OLD_SECRET": "whsec_" + base64.b64encode(b"o" * 32).decode(),
           "X_WEBHOOK_SIGNATURE": headers["X-Webhook-Signature"],
           "WEBHOOK_ID": headers["webhook-id"], "WEBHOOK_TIMESTAMP": headers["webhook-timestamp"],
           "WEBHOOK_SIGNATURE": headers["webhook-signature"]}
    namespace = {"__name__": "docs", "headers": headers, "body": delivery.body}
    run_examples("docs/receiving.md", env, namespace, tmp_path, monkeypatch)

    # The last Flask app (deduplication) as a receiver would run it.
    app = namespace["app"]
    app_client = app.test_client()
    for _ in range(2):
        assert app_client.post("/webhooks", data=delivery.body,
                               headers=headers).status_code == 204
    assert namespace["processed"] == {headers["webhook-id"]}
    forged = app_client.post("/webhooks", data=delivery.body.replace(b"inv_docs", b"inv_x"),
                             headers=headers)
    assert forged.status_code == 400

    # The shell examples reject what they should.
    (tmp_path / "body.json").write_bytes(delivery.body.replace(b"inv_docs", b"inv_x"))
    monkeypatch.setenv("PATH", os.environ["PATH"])
    for block in examples("docs/receiving.md"):
        if block.language == "sh":
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code],
                                    env={**os.environ, **env}, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode != 0 and "forged" in result.stdout


def test_operations_examples(reader_env, test_env, worker, tmp_path, monkeypatch):
    with processes.flower({**test_env, "FLOWER_BASIC_AUTH": FLOWER_AUTH}) as flower_url:
        processes.wait_until_flower_watches_workers(flower_url, tuple(FLOWER_AUTH.split(":")))
        env = {**reader_env, "FLOWER_URL": flower_url, "FLOWER_BASIC_AUTH": FLOWER_AUTH}
        run_examples("docs/operations.md", env, {"__name__": "docs"}, tmp_path, monkeypatch)


def test_event_catalogue_document_is_generated_from_the_code():
    assert (DOCS / "EVENTS.md").read_text() == render_catalogue(), \
        "run: python -m webhooks_api.domain.catalogue_doc"


def test_readme_examples(reader_env, test_env, app, runner, client, receiver, tmp_path,
                         monkeypatch):
    """The README's three ways to publish, for its tenant `tenant_xyz`, each reach a
    subscriber; its key rotation runs."""
    created = runner.invoke(args=["tenants", "create", "tenant_xyz", "--with-key"])
    assert created.exit_code == 0, created.output
    tenant_xyz = {"headers": {"Authorization": f"Bearer {created.stdout.split()[-1]}"}}
    secret = _subscribe(client, tenant_xyz, receiver.url, ["invoice.*"])["secret"]
    # The other service's own Celery app, on the service's broker.
    celery = Celery(broker=test_env["CELERY_BROKER_URL"], broker_transport_options={
        "global_keyprefix": test_env["WEBHOOKS_BROKER_KEY_PREFIX"]})
    with app.app_context():  # "inside the Flask app"
        run_examples("README.md", reader_env, {"__name__": "docs", "celery": celery, "db": db},
                     tmp_path, monkeypatch)

    wait_for(lambda: len(receiver.requests) >= 3, timeout=60, message="three deliveries")
    events = [verify(secret, request.headers, request.body) for request in receiver.requests]
    assert [(event["type"], event["tenant_id"], event["data"]["invoice_id"])
            for event in events] == [("invoice.created", "tenant_xyz", "inv_42")] * 3


def test_json_examples_are_valid_against_the_live_openapi(api):
    spec = requests.get(f"{api}/openapi.json", timeout=10).json()
    validated = [block for block in BLOCKS if doc_blocks.openapi_target(block)]
    assert validated, "no JSON example names its operation"
    for block in validated:
        try:
            validate(json.loads(block.code), spec, *doc_blocks.openapi_target(block))
        except (jsonschema.ValidationError, KeyError) as error:
            raise AssertionError(f"{block} against {block.marker}: {error}") from error
    # The validator is strict: the readiness answer the docs once showed is refused.
    with pytest.raises(jsonschema.ValidationError, match="dependencies"):
        validate({"status": "ready", "checks": {"database": {"status": "up"}}, "warnings": {}},
                 spec, "get", "/readyz", "response", "200")


def test_checked_blocks(api, app, test_env, client, tenant, receiver):
    """Each checked block against the code, the live API and one real delivery."""
    _subscribe(client, tenant, receiver.url, ["invoice.*"])
    client.post("/api/v1/webhooks/publish", headers=tenant["headers"], json={
        "event_type": "invoice.created", "data": {"invoice_id": "inv_docs"}})
    wait_for(lambda: receiver.requests, timeout=30, message="a real delivery")
    delivery = receiver.requests[0]
    live = Live(api=api, app=app, env=test_env, headers=dict(delivery.headers), body=delivery.body)
    failures = []
    for block in BLOCKS:
        classification = doc_blocks.classify(block, CHECKS)
        if classification and classification.kind == "checked":
            try:
                CHECKS[block.key](block, live)
            except (Exception, SystemExit) as error:  # argparse exits
                failures.append(f"{block} ({classification.how}): {error!r}")
    assert failures == [], "\n".join(failures)
    # A check fails on a block that says something else.
    procfile = next(block for block in BLOCKS if block.language == "procfile")
    wrong = dataclasses.replace(procfile, code=procfile.code.replace("--threads", "--thread"))
    with pytest.raises(AssertionError):
        CHECKS[wrong.key](wrong, live)
