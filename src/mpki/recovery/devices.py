"""Device key compromise: a meter's key store compromised, corrupted or unusable, alone or a whole
production run. SMKI device certificates are not revoked; they are marked not in use and the device is
flagged, so its re-enrolment is held for an RA agent past the duplicate-device check (`ra.intake`)."""

from __future__ import annotations

from collections.abc import Sequence

from mpki.audit import AuditRecord, append
from mpki.domain import Eui64, InvalidRequest, utcnow
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.records import RecoveryView, Scenario
from mpki.store import CaRepository, DeviceFlagRepository, RecoveryCertificates, RecoveryRepository

DEVICE_PROFILE = "smki-device"
MAX_DEVICES = 100_000


def propose(context: RecoveryContext, eui64s: Sequence[str], *, actor: str) -> RecoveryView:
    devices = sorted({Eui64.parse(text).hex for text in eui64s})
    if not devices:
        raise InvalidRequest("name at least one device EUI-64")
    if len(devices) > MAX_DEVICES:
        raise InvalidRequest(f"one recovery covers at most {MAX_DEVICES:,} devices")
    with context.authority.database.reader() as session:
        live = {row.eui64 for row in RecoveryCertificates(session).live_of_devices(devices, DEVICE_PROFILE)}
        flagged = DeviceFlagRepository(session).flagged(devices)
    missing = [eui for eui in devices if eui not in live]
    if missing:
        raise InvalidRequest(f"no live device certificate for EUI-64 {', '.join(missing[:5])}")
    if flagged:
        first = sorted(flagged)[0]
        raise InvalidRequest(f"device {first} is already flagged by recovery {flagged[first]}")
    subject = f"{len(devices)} device(s): {', '.join(devices[:3])}{' …' if len(devices) > 3 else ''}"
    return context.desk.propose(Scenario.DEVICE, subject, {"eui64s": devices}, actor=actor)


def run(job: Run) -> dict[str, object]:
    devices: list[str] = list(job.record.parameters["eui64s"])
    now = utcnow().replace(microsecond=0)
    with job.context.authority.database.transaction() as session:
        certificates = RecoveryCertificates(session)
        flags = DeviceFlagRepository(session)
        already = flags.flagged(devices)
        fresh = [eui for eui in devices if eui not in already]
        rows = certificates.live_of_devices(fresh, DEVICE_PROFILE) if fresh else []
        rows = [row for row in rows if row.not_in_use_at is None]
        names = {ca.id: ca.name for ca in CaRepository(session).all()}
        certificates.mark_not_in_use([row.id for row in rows], now)
        flags.flag(fresh, job.record.id, now)
        records = RecoveryRepository(session)
        records.add_items(job.record.id, "not-in-use", [f"{names[row.ca_id]}:{row.serial}" for row in rows], now)
        records.add_items(job.record.id, "device-flagged", fresh, now)
        append(
            session,
            [
                *(
                    AuditRecord(
                        action="certificate.not_in_use",
                        actor=job.actor,
                        ca=names[row.ca_id],
                        serial=row.serial,
                        details={"recovery": job.record.id, "eui64": row.eui64, "key_usage": row.key_usage},
                    )
                    for row in rows
                ),
                *(
                    AuditRecord(
                        action="device.flagged", actor=job.actor, details={"recovery": job.record.id, "eui64": eui}
                    )
                    for eui in fresh
                ),
            ],
            at=now,
        )
    job.progress("devices flagged", len(devices), len(devices))
    return {"devices_flagged": len(fresh), "certificates_not_in_use": len(rows)}
