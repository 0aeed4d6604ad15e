"""The README's quickstart, run as written, on the run command's embedded stack (a machine
with no PostgreSQL or Redis configured): the CLI of a second terminal finds the stack by
itself, the listener prints a verified delivery of the `curl`'s event and deletes its
subscription when stopped, Ctrl-C stops everything, and the data survives a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support import doc_blocks
from tests.support.helpers import wait_for
from webhooks_dev.embedded import free_port, reachable

ROOT = Path(__file__).resolve().parents[2]
README_API = "http://127.0.0.1:8000"


def quickstart_blocks() -> list[str]:
    """The blocks tests/doc_blocks.py counts as run here: the Quickstart's shell blocks."""
    return [block.code for block in doc_blocks.all_blocks()
            if doc_blocks.runner(block) == doc_blocks.RUNNERS[("README.md", "Quickstart")]
            and block.language in doc_blocks.EXECUTABLE]


def _start_stack(env: dict[str, str], log: Path) -> subprocess.Popen:
    # What ./scripts/run executes once .venv has the package.
    return subprocess.Popen([sys.executable, "-m", "webhooks_dev.stack"], env=env, cwd=ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop_with_ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    process.wait(90)


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Terminal:
    """One bash session fed block after block, like a reader pasting into a terminal:
    variables and background jobs carry over; all it prints goes to one log."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as output:  # the child keeps its own descriptor
            self.process = subprocess.Popen(["bash", "--norc", "-eu"], stdin=subprocess.PIPE,
                                            stdout=output, stderr=subprocess.STDOUT, env=env,
                                            cwd=ROOT, text=True, start_new_session=True)

    def paste(self, code: str) -> None:
        self.process.stdin.write(code if code.endswith("\n") else code + "\n")
        self.process.stdin.flush()

    def wait_for_output(self, text: str, timeout: float) -> str:
        def printed() -> str | None:
            output = self.log.read_text()
            assert self.process.poll() is None, f"the shell ended:\n{output}"
            return output if text in output else None
        try:
            return wait_for(printed, timeout=timeout, interval=0.2, message=repr(text))
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log.read_text()}") from None

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                raise
        return self.process.returncode


def test_readme_quickstart_on_the_embedded_stack(tmp_path):
    blocks = quickstart_blocks()
    assert [block.strip() for block in blocks[:1]] == ["./scripts/run"]
    assert len(blocks) == 4, "run; tenant and listener; curl; stop the listener"
    port, flower_port, redis_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "WEBHOOKS_REDIS_URL",
                          "WEBHOOKS_BROKER_KEY_PREFIX", "VIRTUAL_ENV")}
    env.update(PORT=str(port), FLOWER_PORT=str(flower_port), REDIS_PORT=str(redis_port),
               WEBHOOKS_DATA_DIR=str(tmp_path / "data"), WEB_CONCURRENCY="1",
               WORKER_CONCURRENCY="1", WORKER_PROCESSES="1", WEBHOOKS_ENV="development")
    stack_env_file = tmp_path / "data" / "stack.env"
    log = tmp_path / "stack.log"
    stack = _start_stack(env, log)
    try:
        wait_for(lambda: _up(port), timeout=180, interval=0.5, message="the API to come up")
        output = log.read_text()
        assert "DATABASE_URL=" not in output, "no URL to paste"
        assert f"http://127.0.0.1:{flower_port}" in output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert f"http://127.0.0.1:{port}/console" in output
        assert "DATABASE_URL=postgresql" in stack_env_file.read_text()

        # The second terminal: the same environment minus any server URL, so the CLI
        # must find the stack in stack.env. Only the API's port differs from the README.
        terminal = Terminal(env, tmp_path / "terminal.log")
        try:
            tenant_and_listener, publish, stop = (
                block.replace(README_API, f"http://127.0.0.1:{port}") for block in blocks[1:])
            terminal.paste(tenant_and_listener)
            terminal.wait_for_output("Ready", timeout=60)
            terminal.paste(publish)
            shown = terminal.wait_for_output("signature verified", timeout=60)
            event_id = re.search(r'"event_id": ?"([^"]+)"', shown).group(1)
            delivered = [line for line in shown.splitlines() if "signature verified" in line]
            assert len(delivered) == 1 and f"invoice.created {event_id} " in delivered[0]
            assert '{"invoice_id": "inv_42"}' in shown
            terminal.paste(stop)
            terminal.wait_for_output("deleted subscription", timeout=30)
            terminal.paste(f"printf %s \"$KEY\" > {tmp_path / 'key'}")
        finally:
            assert terminal.close() == 0, (tmp_path / "terminal.log").read_text()

        headers = {"Authorization": f"Bearer {(tmp_path / 'key').read_text()}"}
        api = f"http://127.0.0.1:{port}/api/v1/webhooks"
        listed = requests.get(f"{api}/subscriptions", headers=headers, timeout=10)
        assert listed.status_code == 200 and listed.json()["items"] == [], \
            "the listener deleted its subscription"
        deliveries = requests.get(f"{api}/deliveries", headers=headers, timeout=10).json()
        assert [(d["event_id"], d["status"]) for d in deliveries["items"]] == \
            [(event_id, "success")]
        wait_for(lambda: reachable("127.0.0.1", flower_port), timeout=30, message="Flower")
    finally:
        _stop_with_ctrl_c(stack)
    assert not reachable("127.0.0.1", port) and not reachable("127.0.0.1", redis_port)
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()  # PostgreSQL stopped
    assert not stack_env_file.exists(), "no stale URLs once the stack is stopped"

    stack = _start_stack(env, log)
    try:
        wait_for(lambda: _up(port), timeout=180, interval=0.5, message="the API to restart")
        again = requests.get(f"{api}/deliveries", headers=headers, timeout=10)
        assert again.status_code == 200 and again.json()["items"][0]["event_id"] == event_id
    finally:
        _stop_with_ctrl_c(stack)
