"""How long the disk under PostgreSQL takes to make a small write durable, sampled while a
latency run goes on: the floor under that run's p99.

Every event is stored, claimed and recorded by statements that commit, and each commit
waits for PostgreSQL's WAL to reach the disk (`fdatasync`). When the disk stalls, every
backend's commit waits for it at once: on the 2-core machine of docs/benchmark.md an 8 KiB
`fdatasync` took 0.4–0.7 ms at the median and 75–300 ms once every 10–20 s, and
PostgreSQL's statement log showed all statements in flight finishing in the same
millisecond after such a stall. At 50 events/s a 150 ms stall delays about eight events,
more than 1 % of a 10 s run: the p99 is then the disk's, not the worker's. This probe
writes and syncs 8 KiB every 10 ms on the filesystem of PostgreSQL's data directory, so a
run's latency figures can be read against the disk's own stalls.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import text

# An fdatasync slower than this is counted as a stall: the latency target's p99 (10 ms).
STALL_MS = 10.0
INTERVAL_S = 0.01
_BLOCK = b"\0" * 8192


def probe_directory(session) -> Path:
    """A directory on the filesystem of PostgreSQL's data directory when this process can
    write there (the server on this machine), else the temporary directory."""
    try:
        data_directory = Path(session.execute(text("SHOW data_directory")).scalar_one())
    except Exception:  # not allowed to read the setting: a server elsewhere
        session.rollback()
        return Path(tempfile.gettempdir())
    for candidate in (data_directory.parent, data_directory):
        if os.access(candidate, os.W_OK):
            return candidate
    return Path(tempfile.gettempdir())


class FsyncProbe:
    """`with FsyncProbe(directory) as probe:` samples `fdatasync` in a thread until the
    block ends; `probe.summary()` gives the median, the slowest and the stalls."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.samples: list[tuple[float, float]] = []  # (seconds since start, ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FsyncProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        descriptor, path = tempfile.mkstemp(prefix="bench-fsync-", dir=self.directory)
        try:
            start = time.monotonic()
            while not self._stop.wait(INTERVAL_S):
                began = time.monotonic()
                os.pwrite(descriptor, _BLOCK, 0)
                os.fdatasync(descriptor)
                self.samples.append((began - start, 1000 * (time.monotonic() - began)))
        finally:
            os.close(descriptor)
            os.unlink(path)

    def summary(self) -> dict:
        if not self.samples:
            return {"directory": str(self.directory), "samples": 0}
        durations = sorted(ms for _, ms in self.samples)
        return {
            "directory": str(self.directory), "samples": len(durations),
            "p50_ms": round(durations[len(durations) // 2], 2),
            "max_ms": round(durations[-1], 1),
            "stalls": [{"at_s": round(at, 2), "ms": round(ms, 1)}
                       for at, ms in self.samples if ms > STALL_MS],
        }
