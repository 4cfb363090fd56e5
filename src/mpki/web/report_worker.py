"""The report scheduler: a thread that keeps the due weekly and monthly reports, checking every
`schedule_check_minutes` (every node may run one; the schedule stores each report once)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("mpki.web.report_worker")


class _Schedule(Protocol):
    def run(self) -> object: ...


class ReportWorker:
    """Runs the schedule at start, then every `interval` seconds until stopped. A failed run is logged and
    retried at the next check; stop waits for a run in hand to finish."""

    def __init__(self, schedule: _Schedule, *, interval: float) -> None:
        self.schedule = schedule
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mpki-report-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.schedule.run()
            except Exception:  # the next check tries again; the error is logged
                log.exception("scheduled reports failed")
            self._stop.wait(self.interval)
