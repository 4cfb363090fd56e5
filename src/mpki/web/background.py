"""A background thread the app starts and stops with its lifespan: one round of work, then a wait."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    """Runs `round()` until stopped, waiting the seconds it returns between rounds. A failed round is
    logged and the loop goes on (a worker must outlive one bad batch or report); stop waits for a round
    in hand to finish."""

    name = "mpki-background"

    def __init__(self, log: logging.Logger, failure: str) -> None:
        self._log = log
        self._failure = failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def round(self) -> float:
        """Do one round of work; return how long to wait before the next (0: at once)."""

    @abstractmethod
    def after_failure(self) -> float:
        """How long to wait after a round that raised."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.round()
            except Exception:
                self._log.exception(self._failure)
                wait = self.after_failure()
            if wait > 0:
                self._stop.wait(wait)
