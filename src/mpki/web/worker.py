"""The batch worker: a thread that claims and processes submitted batches until it is stopped."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("mpki.web.worker")


class _Queue(Protocol):
    def process_next(self) -> object | None: ...


class BatchWorker:
    """Loops `process_next()`; sleeps `idle` seconds when there is nothing to do. Stop waits for the
    batch in hand to finish (claims are per batch, so another node never takes the same one)."""

    def __init__(self, queue: _Queue, *, idle: float = 0.2) -> None:
        self.queue = queue
        self.idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mpki-batch-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.queue.process_next()
            except Exception:  # a worker must outlive one bad batch; the error is logged
                log.exception("batch processing failed")
                done = None
            if done is None:
                self._stop.wait(self.idle)
