"""TAMP messages a recovery signs for the endpoints, written to the run's directory: numbered from the
signer's counter, checked and audited by `tams.outbox` like every TAMP message this installation signs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mpki.asn1.tamp import Message
from mpki.recovery.context import Run
from mpki.tams.outbox import Signer, sign_numbered
from mpki.tams.sequence import LEGACY_FILE, SequenceNumbers


def sign_for_endpoints(
    run: Run, signer: Signer, make: Callable[[int], Message], filename: str, contingency_key: bytes | None = None
) -> tuple[Path, int]:
    database = run.context.authority.database
    # The same counters as `mpki tams build`, taking over an old counter file the same way.
    numbers = SequenceNumbers(database, run.context.settings.home / LEGACY_FILE)
    directory = run.context.work_dir(run.record.id)
    signed = sign_numbered(
        database,
        numbers,
        signer,
        make,
        lambda seq_num: directory / f"{filename}-seq{seq_num}.der",
        actor=run.actor,
        details={"recovery": run.record.id},
        contingency_key=contingency_key,
    )
    run.step("tamp.signed", seq_num=signed.seq_num, file=str(signed.path), signer=signer.name)
    return signed.path, signed.seq_num
