"""Sending a TAMP message on its way: the next number of the signer's counter, a signature checked
against the key the endpoints hold before the message leaves, an exclusive write (a signed message not yet
delivered is never overwritten), and a `tams.message.signed` audit event. `mpki tams build` and the
recovery procedures both sign this way."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.asn1.cms import SIGNED_DATA_OID
from mpki.asn1.tamp import ContentType, Message, TrustAnchor
from mpki.audit import AuditRecord, append
from mpki.domain import InvalidRequest, utcnow
from mpki.store import Database
from mpki.tams.sequence import SequenceNumbers
from mpki.tams.signing import PublicKey, parse_verified, sign_message

MESSAGE_NAMES: dict[str, str] = {
    ContentType.STATUS_QUERY: "TAMPStatusQuery",
    ContentType.STATUS_RESPONSE: "TAMPStatusResponse",
    ContentType.UPDATE: "TAMPUpdate",
    ContentType.UPDATE_CONFIRM: "TAMPUpdateConfirm",
    ContentType.APEX_UPDATE: "TAMPApexUpdate",
    ContentType.APEX_UPDATE_CONFIRM: "TAMPApexUpdateConfirm",
    ContentType.COMMUNITY_UPDATE: "TAMPCommunityUpdate",
    ContentType.COMMUNITY_UPDATE_CONFIRM: "TAMPCommunityUpdateConfirm",
    ContentType.ERROR: "TAMPError",
    ContentType.SEQ_NUM_ADJUST: "SequenceNumberAdjust",
    ContentType.SEQ_NUM_ADJUST_CONFIRM: "SequenceNumberAdjustConfirm",
}


def message_name(content_type: str) -> str:
    """The RFC's name for a TAMP content type; a message whose type could not be read is just 'message'."""
    if content_type == SIGNED_DATA_OID:
        return "message"
    return MESSAGE_NAMES.get(content_type, f"message of type {content_type}")


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs: the key, the identifier the endpoints know it by, and what they verify it with."""

    name: str
    key: CertificateIssuerPrivateKeyTypes
    key_id: bytes
    trusted: PublicKey | TrustAnchor
    # The CA the audit event names; None for a key that is no CA's (the apex contingency key).
    ca: str | None


@dataclass(frozen=True, slots=True)
class Signed:
    der: bytes
    seq_num: int
    key_id: bytes
    signer: str
    path: Path


def sign_numbered(
    database: Database,
    numbers: SequenceNumbers,
    signer: Signer,
    make: Callable[[int], Message],
    out: Path | Callable[[int], Path],
    *,
    actor: str,
    details: Mapping[str, object] | None = None,
    contingency_key: bytes | None = None,
    at_least: int | None = None,
) -> Signed:
    """Sign `make(next number)` and write it to `out` (or to `out(number)`). `at_least` first raises the
    counter (never lowers it). The number is reserved before signing, so a failure afterwards leaves a
    gap, never a reuse."""
    if isinstance(out, Path) and out.exists():
        raise InvalidRequest(f"output {out} already exists")
    if at_least is not None:
        numbers.set_at_least(signer.key_id, signer.name, at_least)
    seq_num = numbers.reserve(signer.key_id, signer.name)
    path = out if isinstance(out, Path) else out(seq_num)
    message = make(seq_num)
    der = sign_message(
        message, signer.key, key_id=signer.key_id, signing_time=utcnow(), contingency_key=contingency_key
    )
    parse_verified(der, signer.trusted)
    try:
        with path.open("xb") as handle:  # exclusive: a file made meanwhile is not overwritten either
            handle.write(der)
    except FileExistsError:
        raise InvalidRequest(f"output {path} already exists (sequence number {seq_num} is left unused)") from None
    with database.transaction() as session:
        append(
            session,
            [
                AuditRecord(
                    action="tams.message.signed",
                    actor=actor,
                    ca=signer.ca,
                    details={
                        "message": message_name(message.content_type),
                        "seq_num": seq_num,
                        "signer": signer.name,
                        "key_id": signer.key_id.hex(),
                        "sha256": hashlib.sha256(der).hexdigest(),
                        "file": str(path),
                        **(details or {}),
                    },
                )
            ],
        )
    return Signed(der, seq_num, signer.key_id, signer.name, path)
