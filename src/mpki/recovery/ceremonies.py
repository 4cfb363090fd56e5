"""New CAs stood up during a recovery, each in a small recorded ceremony: the proposer and the approver
are its people, its steps are in a record signed by the CA that certifies the new one (a root signs its
own), written to the run's directory and entered in the audit trail with its digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from cryptography import x509

from mpki.audit import AuditRecord, append
from mpki.ca import CaView
from mpki.ceremony.record import RecordBuilder
from mpki.keys.purposes import Purpose
from mpki.recovery.context import Run


def stand_up_ca(
    run: Run,
    *,
    name: str,
    profile: str,
    common_name: str,
    parent: str | None,
    issues: Sequence[str],
    extra_extensions: Sequence[x509.ExtensionType] = (),
    replaces: CaView | None = None,
) -> CaView:
    """`replaces`: the CA the new one stands in for; on a PKCS#11 keystore its key is made on that CA's token
    (a keystore with several tokens must be told which)."""
    authority = run.context.authority
    token = authority.keystore.info(replaces.key_id).token if replaces is not None else None
    record = run.record
    plan = {"name": name, "profile": profile, "common_name": common_name, "parent": parent, "issues": list(issues)}
    builder = RecordBuilder(
        ceremony=f"recovery-{record.id}-{name}",
        environment=run.context.settings.environment.value,
        ceremony_file_sha256=hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest(),
        people={"key_manager": record.approved_by, "proposed_by": record.proposed_by, "recovery": record.id},
    )
    builder.step(
        "ceremony.opened", record.approved_by or "", {"recovery": record.id, "scenario": record.scenario}, plan
    )
    view = authority.create_ca(
        name=name,
        profile_name=profile,
        common_name=common_name,
        parent=parent,
        issues=issues,
        actor=run.actor,
        extra_extensions=extra_extensions,
        token=token,
    )
    info = authority.keystore.info(view.key_id)
    builder.step(
        "key.generated",
        record.approved_by or "",
        {"ca": name},
        {"key_id": view.key_id, "public_key_sha256": hashlib.sha256(info.public_key_der).hexdigest()},
    )
    builder.step(
        "ca.certificate_signed",
        record.approved_by or "",
        {"ca": name, "parent": parent},
        {"serial": view.serial, "certificate_sha256": view.fingerprint_sha256, "not_after": view.not_after.isoformat()},
    )
    signer = view if parent is None else authority.get_ca(parent)
    signed = builder.sign(
        signer.name,
        x509.load_der_x509_certificate(signer.certificate_der),
        authority.keystore.signing_key(signer.key_id, Purpose.RECORD),
    )
    path = run.context.work_dir(record.id) / f"ceremony-{name}.json"
    path.write_bytes(signed)
    digest = hashlib.sha256(signed).hexdigest()
    with authority.database.transaction() as session:
        append(
            session,
            [
                AuditRecord(
                    action="ceremony.completed",
                    actor=record.approved_by or "",
                    ca=name,
                    details={"ceremony": builder.ceremony, "record_sha256": digest, "signer": signer.name},
                )
            ],
        )
    run.step("ca.stood_up", ca=name, parent=parent, ceremony_record=str(path), record_sha256=digest)
    return view
