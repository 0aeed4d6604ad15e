"""Celery beat's scheduler: the schedule in memory, each of our entries due when beat starts.

Celery's default scheduler keeps each entry's last run in a shelve file (`--schedule`); in a
checkout without that file's folder, or in a read-only container, beat exits at once
(`FileNotFoundError: var/celerybeat-schedule.dat`) and nothing sweeps. The file only saves
a restarted beat from running a task early, and both of ours (`webhooks.sweep`,
`webhooks.prune`) are safe to repeat, so nothing is written: a beat that starts runs each
once straight away, then every interval, and no restart postpones either by an interval.
Set as `beat_scheduler` in celeryconfig, so `celery beat` needs no flag and no file.
"""

from __future__ import annotations

from datetime import UTC, datetime

from celery.beat import Scheduler

_NEVER = datetime(2000, 1, 1, tzinfo=UTC)


class StartupScheduler(Scheduler):
    def setup_schedule(self) -> None:
        super().setup_schedule()
        for name in self.app.conf.beat_schedule:
            self.schedule[name].last_run_at = _NEVER
