"""The report scheduler: a thread that keeps the due weekly and monthly reports, checking every
`schedule_check_minutes` (every node may run one; the schedule stores each report once)."""

from __future__ import annotations

import logging
from typing import Protocol

from mpki.web.background import BackgroundLoop

log = logging.getLogger("mpki.web.report_worker")


class _Schedule(Protocol):
    def run(self) -> object: ...


class ReportWorker(BackgroundLoop):
    """Runs the schedule at start, then every `interval` seconds until stopped. A failed run is logged and
    retried at the next check; stop waits for a run in hand to finish."""

    name = "mpki-report-worker"

    def __init__(self, schedule: _Schedule, *, interval: float) -> None:
        super().__init__(log, "scheduled reports failed")
        self.schedule = schedule
        self.interval = interval

    def round(self) -> float:
        self.schedule.run()
        return self.interval

    def after_failure(self) -> float:
        return self.interval
