"""Beat as an operator starts it, and what the API shows of it: the Procfile's `beat` line
starts in a fresh clone without var/ on a read-only filesystem and keeps the sweep going;
once beat stops, `/readyz` (still 200) names the late sweep and `/metrics` shows when the
last one finished."""

from __future__ import annotations

import subprocess
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, VAR, beat_process
from tests.support import processes
from tests.support.engine_support import isolated_worker
from tests.support.helpers import wait_for
from webhooks_api.extensions import db
from webhooks_api.services.sweep_record import last_sweep

BEAT_LOG = VAR / "test-beat.log"
SWEEP_EVERY_SECOND = {"WEBHOOKS_SWEEP_INTERVAL_SECONDS": "1"}
# A private mount namespace whose root filesystem is read-only, as in a read-only
# container: nothing beat starts can write a file anywhere.
READ_ONLY = ["unshare", "--mount", "sh", "-c", 'mount -o remount,bind,ro / && exec "$@"',
             "read-only"]
SWEEP_METRIC = "webhooks_sweep_last_finished_timestamp_seconds"


def _swept_at(app) -> float | None:
    with app.app_context():
        return last_sweep(db.session).finished_at


def test_the_procfile_beat_line_sweeps_from_a_fresh_read_only_clone(app, test_env, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    assert not (clone / "var").exists()

    with isolated_worker(test_env, SWEEP_EVERY_SECOND) as worker, beat_process(
            worker.env, clone, BEAT_LOG, procfile=clone / "Procfile",
            wrapper=READ_ONLY) as beat:
        first = wait_for(lambda: beat.poll() is not None or _swept_at(app), timeout=60,
                         message="a sweep sent by beat")
        assert beat.poll() is None, f"beat exited; see {BEAT_LOG}"
        wait_for(lambda: beat.poll() is not None or _swept_at(app) > first, timeout=30,
                 message="the next sweep")
        assert beat.poll() is None, f"beat exited; see {BEAT_LOG}"
    assert not (clone / "var").exists()


def _readyz(api: str) -> dict:
    response = requests.get(f"{api}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _sweep_metric(api: str) -> float:
    text = requests.get(f"{api}/metrics", timeout=10).text
    [value] = [sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == SWEEP_METRIC]
    return value


def test_a_stopped_beat_is_named_by_readyz_and_seen_in_the_metric(app, test_env, tmp_path):
    with isolated_worker(test_env, SWEEP_EVERY_SECOND) as worker, \
            processes.web(worker.env, workers=1) as api:
        never = _readyz(api)
        assert never["status"] == "ready" and "no sweep has finished" in never["warnings"]["sweep"]
        assert _sweep_metric(api) == 0

        with beat_process(worker.env, tmp_path, BEAT_LOG):
            wait_for(lambda: _readyz(api)["warnings"] == {}, timeout=60,
                     message="/readyz to see a sweep")
            assert time.time() - _sweep_metric(api) < 10
        stopped_at = time.time()

        late = wait_for(lambda: (body := _readyz(api))["warnings"] and body, timeout=30,
                        message="/readyz to name the late sweep")
        assert late["status"] == "ready"
        assert late["dependencies"] == {"database": {"status": "up"},
                                        "broker": {"status": "up"}}
        assert "is beat running?" in late["warnings"]["sweep"]
        last = _sweep_metric(api)
        assert last < stopped_at + 5  # a sweep beat sent just before it stopped may finish
        assert time.time() - last > 3  # 3 sweep intervals
