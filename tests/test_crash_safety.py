"""Crash safety (rule 5): SIGKILL an issuer in the middle of a large `issue_many`, then check that the
audit chain verifies, that every reserved serial has its stored certificate or is marked abandoned once
`mpki ca reconcile` has run, and that no serial is ever used twice, not even after issuing again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from cryptography import x509
from sqlalchemy import Connection, text

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority, IssuanceOrder
from tests.csr_factory import device_csr, random_eui64

pytestmark = pytest.mark.slow

BATCH = 10_000
CHUNK = 200
DRIVER = Path(__file__).with_name("crash_driver.py")
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def csr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BATCH distinct device CSRs (fresh keys and EUI-64s), hex DER one per line, made once per session."""
    path = tmp_path_factory.mktemp("crash") / "device-csrs.hex"
    path.write_text("\n".join(device_csr(random_eui64()).hex() for _ in range(BATCH)) + "\n")
    return path


@dataclass
class Killed:
    pid: int
    last_progress: int
    reserved_at_kill: int


def _read_line(stream: IO[str], deadline: float, proc: subprocess.Popen[str]) -> str:
    line = stream.readline()
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"the driver stopped early (exit {proc.returncode})")
    if time.monotonic() > deadline:
        raise AssertionError("the driver took too long to make progress")
    return line.strip()


def _reserved(sql: Connection) -> int:
    return int(sql.execute(text("SELECT COUNT(*) FROM serial_reservations WHERE status = 'reserved'")).scalar_one())


def _run_and_kill(env: dict[str, str], csr_file: Path, sql: Connection, tmp_path: Path, *, mid_chunk: bool) -> Killed:
    """Start the driver; once a chunk beyond the first progress report is committed, SIGKILL it.

    With `mid_chunk`, signing is slowed and the kill waits until the next chunk's reservations are
    committed, so it lands between a chunk's reservations and its certificates every time. Without, the
    kill follows the progress line at once and lands wherever the driver happens to be.
    """
    driver_env = env | {"MPKI_ISSUANCE_CHUNK_SIZE": str(CHUNK), "PYTHONPATH": str(REPOSITORY)}
    if mid_chunk:
        driver_env["CRASH_DRIVER_SIGN_DELAY_MS"] = "1"
    stderr = (tmp_path / "driver.stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), str(csr_file)],
        env=driver_env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=REPOSITORY,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        assert _read_line(proc.stdout, deadline, proc) == f"ready {BATCH}"
        done = 0
        while done == 0:
            words = _read_line(proc.stdout, deadline, proc).split()
            assert words[0] == "progress", words
            done = int(words[1])
        reserved = 0
        if mid_chunk:
            while reserved == 0 and proc.poll() is None and time.monotonic() < deadline:
                reserved = _reserved(sql)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # reaped, so reconciliation sees the owner's process gone
        assert proc.returncode == -signal.SIGKILL, f"the driver was not killed but exited {proc.returncode}"
        return Killed(proc.pid, done, reserved)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()


def _stored(sql: Connection) -> set[tuple[int, str]]:
    """Every (CA id, serial) with a stored certificate: issued certificates and the CAs' own certificates."""
    issued = sql.execute(text("SELECT ca_id, serial FROM certificates")).all()
    cas = sql.execute(text("SELECT COALESCE(parent_id, id), serial FROM cas WHERE status = 'active'")).all()
    return {(int(a), str(s)) for a, s in [*issued, *cas]}


def _reservations(sql: Connection) -> dict[str, set[tuple[int, str]]]:
    rows = sql.execute(text("SELECT ca_id, serial, status FROM serial_reservations")).all()
    by_status: dict[str, set[tuple[int, str]]] = {"reserved": set(), "used": set(), "abandoned": set()}
    for ca_id, serial, status in rows:
        by_status[status].add((int(ca_id), str(serial)))
    total = sum(len(v) for v in by_status.values())
    assert total == len(rows), "a (CA, serial) pair is reserved twice"
    return by_status


def _assert_serials_unique(sql: Connection) -> None:
    duplicates = sql.execute(
        text(
            "SELECT ca_id, serial FROM serial_reservations GROUP BY ca_id, serial HAVING COUNT(*) > 1 "
            "UNION ALL SELECT ca_id, serial FROM certificates GROUP BY ca_id, serial HAVING COUNT(*) > 1"
        )
    ).all()
    assert duplicates == []


@pytest.mark.parametrize("mid_chunk", [True, False], ids=["kill-between-reserve-and-store", "kill-after-progress"])
def test_sigkill_during_issue_many_loses_nothing_and_reuses_nothing(
    authority: CertificationAuthority,
    env: dict[str, str],
    csr_file: Path,
    sql: Connection,
    mpki,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    mid_chunk: bool,
) -> None:
    killed = _run_and_kill(env, csr_file, sql, tmp_path, mid_chunk=mid_chunk)
    device_ca = int(sql.execute(text("SELECT id FROM cas WHERE name = 'smki-device-ca'")).scalar_one())

    # Straight after the crash: certificates and their "used" reservations committed together, and
    # what is still "reserved" is the chunk in flight, held by the dead driver and never stored.
    stored = _stored(sql)
    before = _reservations(sql)
    assert before["used"] == stored
    assert before["abandoned"] == set()
    assert before["reserved"].isdisjoint(stored)
    assert len(before["reserved"]) <= CHUNK
    issued = {serial for ca_id, serial in stored if ca_id == device_ca}
    assert len(issued) >= killed.last_progress >= CHUNK
    assert len(issued) % CHUNK == 0 and len(issued) < BATCH
    if mid_chunk:
        assert killed.reserved_at_kill > 0
        assert len(before["reserved"]) == CHUNK
    owners = sql.execute(text("SELECT DISTINCT owner FROM serial_reservations WHERE status = 'reserved'")).scalars()
    assert all(f":{killed.pid}:" in owner for owner in owners)

    # The audit chain is whole, and tells the same story as the tables.
    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
    logged = set(sql.execute(text("SELECT serial FROM audit_events WHERE action = 'certificate.issued'")).scalars())
    assert logged == issued

    run = mpki("ca", "reconcile")
    assert run.returncode == 0, run.stderr
    assert f"{len(before['reserved'])} abandoned" in run.stdout

    after = _reservations(sql)
    assert after["reserved"] == set()
    assert after["abandoned"] == before["reserved"]
    assert after["used"] == _stored(sql) == stored
    assert after["abandoned"].isdisjoint(stored)
    assert len(after["used"]) > 0
    assert len(after["used"] | after["abandoned"]) > len(stored) if mid_chunk else len(after["used"]) > 0
    _assert_serials_unique(sql)

    abandoned_logged: set[str] = set()
    for details in sql.execute(text("SELECT details FROM audit_events WHERE action = 'serials.abandoned'")).scalars():
        abandoned_logged.update(json.loads(details)["serials"])
    assert abandoned_logged == {serial for _, serial in after["abandoned"]}

    # Every stored certificate really carries the serial it is filed under.
    for serial, der in sql.execute(text("SELECT serial, der FROM certificates")).all()[:: max(1, CHUNK // 4)]:
        assert f"{x509.load_der_x509_certificate(bytes(der)).serial_number:x}" == serial

    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr

    # A second reconciliation finds nothing more, and issuing again after recovery reuses no serial.
    assert authority.reconcile() == 0
    fresh = [IssuanceOrder("smki-device", device_csr(random_eui64()), approved_by="test") for _ in range(CHUNK + 50)]
    results = authority.issue_many(fresh, actor="test")
    assert all(result.ok for result in results)
    new = {(device_ca, result.certificate.serial) for result in results if result.certificate}
    assert len(new) == len(fresh)
    assert new.isdisjoint(after["abandoned"])
    assert new.isdisjoint(stored)
    final = _reservations(sql)
    assert final["used"] == stored | new == _stored(sql)
    assert final["abandoned"] == after["abandoned"]
    assert final["reserved"] == set()
    _assert_serials_unique(sql)
    assert verify_chain(authority.database).ok
    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
