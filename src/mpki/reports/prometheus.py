"""Prometheus across several server processes: the shared directory prometheus_client's multiprocess mode
keeps every worker's counters in. Here, below both the CLI (which starts the workers) and the web room
(whose /metrics reads the directory), so both name the same variable."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_dir(run_dir: Path) -> Iterator[Path]:
    """For several server processes: a fresh, empty PROMETHEUS_MULTIPROC_DIR under `run_dir` in the
    environment the workers inherit, so /metrics sums their counters whichever worker answers the scrape.
    Files a previous run left behind are removed first (their counts would be added in), and the directory
    is removed when the server stops. A directory the operator chose is used as it is and left alone."""
    chosen = os.environ.get(MULTIPROCESS_ENV)
    if chosen:
        yield Path(chosen)
        return
    directory = run_dir / "prometheus"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
