"""Every Python and shell example in docs/ runs, in document order, against a real stack
(gunicorn, the test worker, a receiver, Flower), and what it promises happens.

Python blocks of one document share a namespace, like a reader's session; shell blocks run
in bash with `-euo pipefail`. Blocks in other languages (text, json, procfile, dotenv) are
shown, not run. The harness provides what a document says its reader has (the variables of
USAGE.md's table, a real delivery's `headers` and `body` in receiving.md).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.helpers import wait_for
from webhooks_api.domain.catalogue_doc import render as render_catalogue
from webhooks_verify import verify

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXECUTED = {"python": "python", "sh": "sh", "bash": "sh", "shell": "sh"}
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FLOWER_AUTH = "docs:docs-pass-1"


def examples(document: str) -> list[tuple[str, str]]:
    text = (DOCS / document).read_text()
    return [(EXECUTED[lang], code) for lang, code in _BLOCK.findall(text) if lang in EXECUTED]


def run_examples(document: str, env: dict[str, str], namespace: dict, cwd: Path,
                 monkeypatch) -> None:
    blocks = examples(document)
    assert blocks, f"{document} has no executable example"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bin_dir = str(Path(sys.executable).parent)
    shell_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for number, (language, code) in enumerate(blocks, 1):
        where = f"{document} example {number}:\n{code}"
        if language == "python":
            try:
                exec(compile(code, f"{document}#{number}", "exec"), namespace)  # noqa: S102
            except Exception as error:
                raise AssertionError(f"{where}\nraised {error!r}") from error
        else:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=shell_env,
                                    cwd=cwd, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{where}\nstdout: {result.stdout}\n" \
                                           f"stderr: {result.stderr}"


@pytest.fixture
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
    run_examples("USAGE.md", reader_env, {"__name__": "docs"}, tmp_path, monkeypatch)

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
    run_examples("receiving.md", env, namespace, tmp_path, monkeypatch)

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
    for language, code in examples("receiving.md"):
        if language == "sh":
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", code],
                                    env={**os.environ, **env}, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode != 0 and "forged" in result.stdout


def test_operations_examples(reader_env, test_env, worker, tmp_path, monkeypatch):
    with processes.flower({**test_env, "FLOWER_BASIC_AUTH": FLOWER_AUTH}) as flower_url:
        processes.wait_until_flower_watches_workers(flower_url, tuple(FLOWER_AUTH.split(":")))
        env = {**reader_env, "FLOWER_URL": flower_url, "FLOWER_BASIC_AUTH": FLOWER_AUTH}
        run_examples("operations.md", env, {"__name__": "docs"}, tmp_path, monkeypatch)


def test_event_catalogue_document_is_generated_from_the_code():
    assert (DOCS / "EVENTS.md").read_text() == render_catalogue(), \
        "run: python -m webhooks_api.domain.catalogue_doc"


def test_the_procfile_in_operations_md_is_the_procfile():
    """Operators copy the process lines from docs/operations.md: they are the Procfile's own
    lines, word for word (its comments aside)."""
    shown = re.search(r"```procfile\n(.*?)```", (DOCS / "operations.md").read_text(),
                      re.S).group(1).splitlines()
    procfile = [line for line in (DOCS.parent / "Procfile").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert shown == procfile
