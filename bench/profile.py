"""Where a worker's time goes: `py-spy record` on the worker tree, and a summary of it.

The profiled pass is an extra 1-subscription run after the measured ones: py-spy takes CPU
of its own (about a third of a core here), so it never runs during a measurement.

py-spy samples the worker and its pool children (`--subprocesses`) wall-clock (`--idle`:
waiting on PostgreSQL, Redis or the receiver counts too) without pausing them
(`--nonblocking`). A CPU-only recording is not offered: py-spy does not see a thread
blocked inside psycopg2 as idle, so it would look the same; the worker's CPU per delivery
comes from /proc instead (the throughput figures). The summary splits samples by process
(main process or pool child) and takes every sample inside a task body
(`attempt_delivery`, `publish_stored_or_new`), broken down by the line of that function
being run and by the functions below it, so "how much of a delivery is the claim, the POST,
the record" can be read off directly. The raw stacks are kept
(bench/results/profile-throughput.txt; one file per copy, `-1`, `-2`, ..., when the worker
line runs several times, each copy under a py-spy of its own) for a flamegraph.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.scenarios import Bench, end_to_end
from bench.stack import RESULTS, ROOT

ANCHORS = ("attempt_delivery", "publish_stored_or_new")
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recording:
    """A running `py-spy record`; `stop()` makes it write its raw stacks."""

    def __init__(self, pid: int, name: str, rate: int = 100):
        binary = py_spy()
        if binary is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.output = RESULTS / f"profile-{name}.txt"
        with open(RESULTS / f"profile-{name}.log", "wb") as log:
            self.process = subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                 "--idle", "--rate", str(rate), "--format", "raw", "--output", str(self.output)],
                stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> Path:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        return self.output


def _parse_frame(frame: str) -> tuple[str, str, int | None]:
    match = _FRAME.match(frame)
    if not match:
        return frame, "", None
    line = match.group("line")
    return match.group("function"), match.group("file"), int(line) if line else None


def _source_line(file: str, line: int | None) -> str:
    path = ROOT / file
    if line is None or not path.exists():
        return ""
    lines = path.read_text().splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _raw_lines(raw_paths: list[Path]):
    for raw_path in raw_paths:
        yield from raw_path.read_text().splitlines()


def summarize(raw_paths: list[Path], top: int = 25) -> dict:
    """Samples per process role, and per task body by its own line and by the functions it
    calls (inclusive)."""
    total = 0
    by_process: Counter = Counter()
    by_anchor: dict[str, dict] = {anchor: {"samples": 0, "lines": Counter(),
                                           "callees": Counter(), "leaves": Counter()}
                                  for anchor in ANCHORS}
    for raw_line in _raw_lines(raw_paths):
        stack_text, _, count_text = raw_line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse_frame(frame) for frame in stack_text.split(";")]
        # --subprocesses roots each stack in its process chain: a child sits under the main.
        depth = sum(function.startswith("process ") for function, _, _ in frames[:2])
        by_process["pool child" if depth == 2 else "main process"] += count
        for anchor in ANCHORS:
            position = next((i for i, f in enumerate(frames) if f[0] == anchor), None)
            if position is None:
                continue
            summary = by_anchor[anchor]
            summary["samples"] += count
            function, file, line = frames[position]
            summary["lines"][f"{file}:{line}  {_source_line(file, line)}"] += count
            seen = set()
            for callee, callee_file, _ in frames[position + 1:]:
                key = f"{callee} ({callee_file})"
                if key not in seen:
                    seen.add(key)
                    summary["callees"][key] += count
            leaf, leaf_file, _ = frames[-1]
            summary["leaves"][f"{leaf} ({leaf_file})"] += count

    def shares(counter: Counter, of: int) -> list[list]:
        return [[what, round(100 * n / of, 1)] for what, n in counter.most_common(top)]

    result: dict = {"raw": [str(path.relative_to(ROOT)) for path in raw_paths],
                    "samples": total,
                    "by_process_pct": {role: round(100 * n / total, 1)
                                       for role, n in by_process.most_common()}}
    for anchor, summary in by_anchor.items():
        if summary["samples"]:
            result[anchor] = {
                "samples": summary["samples"],
                "pct_of_all_samples": round(100 * summary["samples"] / total, 1),
                "by_line_pct": shares(summary["lines"], summary["samples"]),
                "inclusive_pct": shares(summary["callees"], summary["samples"]),
                "leaf_pct": shares(summary["leaves"], summary["samples"]),
            }
    return result


def print_summary(summary: dict, limit: int = 12) -> None:
    print(f"\n  profile (wall clock): samples by process {summary['by_process_pct']}")
    for anchor in ANCHORS:
        if anchor not in summary:
            continue
        part = summary[anchor]
        print(f"\n  profile (wall clock): {anchor} — {part['samples']} samples "
              f"({part['pct_of_all_samples']} % of all)")
        for title, key in (("by line", "by_line_pct"), ("inclusive", "inclusive_pct")):
            print(f"    {title}:")
            for what, pct in part[key][:limit]:
                print(f"      {pct:5.1f} %  {what[:110]}")


def profiled_throughput(bench: Bench) -> None:
    """The 1-subscription shape again, under py-spy; its rate is kept apart from the figures."""
    pids = bench.worker.main_pids
    recordings = [Recording(pid, "throughput" if len(pids) == 1 else f"throughput-{number}",
                            rate=bench.sizes["profile_rate"])
                  for number, pid in enumerate(pids, 1)]
    try:
        measured = end_to_end(bench, "profile", 1, bench.sizes["profile_events"])
    finally:
        raws = [recording.stop() for recording in recordings]
    bench.details["profile"] = {"run_under_profiler": measured, **summarize(raws)}
