"""TAMP messages a recovery signs for the endpoints: numbered per signer key, checked against the signer's
public key before they leave, written to the run's directory and audited."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.asn1.tamp import Message
from mpki.audit import AuditRecord, append
from mpki.domain import InvalidRequest, utcnow
from mpki.keys.interface import PublicKey
from mpki.recovery.context import Run
from mpki.tams import parse_verified, sign_message
from mpki.tams.sequence import LEGACY_FILE, SequenceNumbers


def sign_for_endpoints(
    run: Run,
    *,
    make: Callable[[int], Message],
    key: CertificateIssuerPrivateKeyTypes,
    public_key: PublicKey,
    key_id: bytes,
    signer: str,
    filename: str,
    contingency_key: bytes | None = None,
) -> tuple[Path, int]:
    database = run.context.authority.database
    # The same counters as `mpki tams build`, taking over an old counter file the same way.
    seq_num = SequenceNumbers(database, run.context.settings.home / LEGACY_FILE).reserve(key_id, signer)
    message = make(seq_num)
    der = sign_message(message, key, key_id=key_id, signing_time=utcnow(), contingency_key=contingency_key)
    parse_verified(der, public_key)
    path = run.context.work_dir(run.record.id) / f"{filename}-seq{seq_num}.der"
    try:
        with path.open("xb") as handle:
            handle.write(der)
    except FileExistsError:
        raise InvalidRequest(f"{path} exists already (sequence number {seq_num} is left unused)") from None
    with database.transaction() as session:
        append(
            session,
            [
                AuditRecord(
                    action="tams.message.signed",
                    actor=run.actor,
                    ca=signer if not signer.startswith("contingency") else None,
                    details={
                        "recovery": run.record.id,
                        "content_type": message.content_type,
                        "seq_num": seq_num,
                        "signer": signer,
                        "key_id": key_id.hex(),
                        "sha256": hashlib.sha256(der).hexdigest(),
                        "file": str(path),
                    },
                )
            ],
        )
    run.step("tamp.signed", content_type=str(message.content_type), seq_num=seq_num, file=str(path), signer=signer)
    return path, seq_num
