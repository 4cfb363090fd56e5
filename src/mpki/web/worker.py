"""The batch worker: a thread that claims and processes submitted batches until it is stopped."""

from __future__ import annotations

import logging
from typing import Protocol

from mpki.web.background import BackgroundLoop

log = logging.getLogger("mpki.web.worker")


class _Queue(Protocol):
    def process_next(self) -> object | None: ...


class BatchWorker(BackgroundLoop):
    """Loops `process_next()`; sleeps `idle` seconds when there is nothing to do. Stop waits for the
    batch in hand to finish (claims are per batch, so another node never takes the same one)."""

    name = "mpki-batch-worker"

    def __init__(self, queue: _Queue, *, idle: float = 0.2) -> None:
        super().__init__(log, "batch processing failed")
        self.queue = queue
        self.idle = idle

    def round(self) -> float:
        return self.idle if self.queue.process_next() is None else 0.0

    def after_failure(self) -> float:
        return self.idle
