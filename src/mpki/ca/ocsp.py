"""Signing OCSP responses with a delegated responder's key (RFC 6960), one certificate or several."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp

from mpki.asn1.der import read_tlv, tlv
from mpki.asn1.ocsp import SingleStatus, encode_basic_response, encode_response_data
from mpki.ca.crl import sign_bytes, signature_algorithm_der
from mpki.ca.signing import draft_key, signature_hash

# Signs many to-be-signed ResponseData in one request to the signer.
BatchSign = Callable[[Sequence[bytes]], list[bytes]]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}
_REASON_FLAGS = {
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True)
class OcspSigner:
    """A CA's current delegated responder: its certificate (sent with every response) and its key."""

    responder_id: int
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    sign_batch: BatchSign | None = None

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def sign(self, answers: list[SingleStatus], *, nonce: bytes | None, produced_at: dt.datetime) -> bytes:
        """A successful OCSPResponse naming the responder by key hash, with the nonce echoed if given."""
        if len(answers) == 1:
            return self._sign_one(answers[0], nonce, produced_at)
        return self._sign_many(answers, nonce, produced_at)

    def sign_each(self, answers: Sequence[SingleStatus], produced_at: dt.datetime) -> list[bytes]:
        """One response per answer (pre-signing), all signed in one request to the signer when it batches."""
        if self.sign_batch is None:
            return [self._sign_one(answer, None, produced_at) for answer in answers]
        draft = draft_key(self.key)
        drafts = [self._sign_one(answer, None, produced_at, draft) for answer in answers]
        tbs = [ocsp.load_der_ocsp_response(der).tbs_response_bytes for der in drafts]
        return [_with_signature(der, signature) for der, signature in zip(drafts, self.sign_batch(tbs), strict=True)]

    def _sign_one(
        self,
        answer: SingleStatus,
        nonce: bytes | None,
        produced_at: dt.datetime,
        key: CertificateIssuerPrivateKeyTypes | None = None,
    ) -> bytes:
        # cryptography takes producedAt from the clock; the pre-signed response's thisUpdate is ours.
        del produced_at
        key = key or self.key
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=answer.cert_id.issuer_name_hash,
            issuer_key_hash=answer.cert_id.issuer_key_hash,
            serial_number=answer.cert_id.serial,
            algorithm=_HASHES[answer.cert_id.hash_algorithm],
            cert_status=_STATUS[answer.status],
            this_update=answer.this_update,
            next_update=answer.next_update,
            revocation_time=answer.revoked_at if answer.status == "revoked" else None,
            revocation_reason=_REASON_FLAGS.get(answer.reason or 0) if answer.status == "revoked" else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
        builder = builder.certificates([self.certificate])
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(key, signature_hash(key))
        return response.public_bytes(serialization.Encoding.DER)

    def _sign_many(self, answers: list[SingleStatus], nonce: bytes | None, produced_at: dt.datetime) -> bytes:
        key_hash = x509.SubjectKeyIdentifier.from_public_key(self.certificate.public_key()).digest
        data = encode_response_data(key_hash, produced_at, answers, nonce)
        signature = sign_bytes(self.key, data)
        return encode_basic_response(
            data,
            signature_algorithm_der(self.key),
            signature,
            [self.certificate.public_bytes(serialization.Encoding.DER)],
        )


def _with_signature(draft: bytes, signature: bytes) -> bytes:
    """The draft OCSPResponse with its BasicOCSPResponse's signature replaced (RFC 6960 section 4.2.1)."""
    _, outer, _ = read_tlv(draft, 0, "a draft OCSP response")
    _, _, after_status = read_tlv(outer, 0, "its responseStatus")
    _, explicit, _ = read_tlv(outer, after_status, "its responseBytes")
    _, response_bytes, _ = read_tlv(explicit, 0, "its ResponseBytes")
    _, _, after_type = read_tlv(response_bytes, 0, "its responseType")
    _, basic, _ = read_tlv(response_bytes, after_type, "its response")
    _, fields, _ = read_tlv(basic, 0, "its BasicOCSPResponse")
    _, _, after_tbs = read_tlv(fields, 0, "its tbsResponseData")
    _, _, after_algorithm = read_tlv(fields, after_tbs, "its signatureAlgorithm")
    _, _, after_signature = read_tlv(fields, after_algorithm, "its signature")
    signed_fields = fields[:after_algorithm] + tlv(0x03, b"\x00" + signature) + fields[after_signature:]
    signed_basic = tlv(0x30, signed_fields)
    signed_bytes = response_bytes[:after_type] + tlv(0x04, signed_basic)
    return tlv(0x30, outer[:after_status] + tlv(0xA0, tlv(0x30, signed_bytes)))


def unsuccessful(status: str) -> bytes:
    """An unsigned error response: malformedRequest, internalError, tryLater, unauthorized (RFC 6960 4.2.1)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus[status]).public_bytes(
        serialization.Encoding.DER
    )
